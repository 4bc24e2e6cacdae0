/** PromQL words that are not metric names: keywords, aggregations and their modifiers. */
const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'offset',
  'bool',
  'inf',
  'nan',
  // aggregations, which may be followed by `by (…)` instead of `(`
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
]);
const LABEL_LIST_BEFORE = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/**
 * The metric names a PromQL expression reads. A small tokenizer, enough for the expressions
 * Warden writes: strings, label matchers `{…}`, ranges `[…]` and label lists after `by`/`on`/…
 * are skipped; a word followed by `(` is a function; numbers and durations are not names.
 */
export function metricNamesIn(expr: string): Set<string> {
  const names = new Set<string>();
  const source = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ');
  const tokens: string[] =
    source.match(
      /[A-Za-z_:][A-Za-z0-9_:]*|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-z]*|\$\w+|[()]|[^\sA-Za-z0-9_:()]+/g,
    ) ?? [];
  for (let i = 0; i < tokens.length; i += 1) {
    const token = tokens[i]!;
    if (!/^[A-Za-z_:]/.test(token)) continue;
    const lower = token.toLowerCase();
    if (LABEL_LIST_BEFORE.has(lower)) {
      if (tokens[i + 1] === '(') i = tokens.indexOf(')', i + 1);
      continue;
    }
    if (KEYWORDS.has(lower) || tokens[i + 1] === '(') continue;
    names.add(token);
  }
  return names;
}
