/**
 * Splits SQL text into statements at semicolons outside string literals (`'…'`, `E'…'`),
 * quoted identifiers (`"…"`), dollar-quoted bodies (`$tag$…$tag$`) and comments (`-- …`,
 * nested `/* … *\/`). Used for files that must run outside a transaction, one statement at a time
 * (`CREATE INDEX CONCURRENTLY` refuses a multi-statement query, which is one implicit transaction).
 * Empty statements (comments only) are dropped.
 */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let i = 0;
  const push = (end: number) => {
    const text = sql.slice(start, end).trim();
    if (stripComments(text).trim()) statements.push(text);
  };
  while (i < sql.length) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end + 1;
    } else if (c === '/' && next === '*') {
      i = skipBlockComment(sql, i);
    } else if (c === "'" || c === '"') {
      i = skipQuoted(sql, i, c);
    } else if (c === '$') {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (tag && !/[A-Za-z0-9_]/.test(sql[i - 1] ?? '')) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        i = close === -1 ? sql.length : close + tag[0].length;
      } else i += 1;
    } else if (c === ';') {
      push(i);
      start = i + 1;
      i += 1;
    } else i += 1;
  }
  push(sql.length);
  return statements;
}

function skipQuoted(sql: string, from: number, quote: string): number {
  let i = from + 1;
  while (i < sql.length) {
    if (sql[i] === quote) {
      if (sql[i + 1] === quote)
        i += 2; // a doubled quote is the quote itself
      else return i + 1;
    } else if (quote === "'" && sql[i] === '\\' && isEscapeString(sql, from)) i += 2;
    else i += 1;
  }
  return sql.length;
}

/** `E'…'` strings take backslash escapes. */
function isEscapeString(sql: string, quoteAt: number): boolean {
  return /[eE]/.test(sql[quoteAt - 1] ?? '') && !/[A-Za-z0-9_]/.test(sql[quoteAt - 2] ?? '');
}

function skipBlockComment(sql: string, from: number): number {
  let depth = 0;
  let i = from;
  while (i < sql.length) {
    if (sql[i] === '/' && sql[i + 1] === '*') {
      depth += 1;
      i += 2;
    } else if (sql[i] === '*' && sql[i + 1] === '/') {
      depth -= 1;
      i += 2;
      if (depth === 0) return i;
    } else i += 1;
  }
  return sql.length;
}

function stripComments(text: string): string {
  return text.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
}
