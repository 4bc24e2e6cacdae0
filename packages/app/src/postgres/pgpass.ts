import { readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { warnOnce } from './security-warning.ts';

// Twin of the Warden tool's copy of this module (src/postgres or src/util); keep the two in step.

/** What a password file line is matched against (libpq's rules). */
export interface PgpassQuery {
  host: string;
  port: number;
  database: string;
  user: string;
}

/** The password file libpq would read: PGPASSFILE, else ~/.pgpass. */
export function pgpassPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.PGPASSFILE || path.join(env.HOME || os.homedir(), '.pgpass');
}

/**
 * The password for `query` from a libpq password file (`hostname:port:database:username:password`
 * lines, `*` matching any value of a field, `\:` and `\\` escapes, `#` comments; the first
 * matching line wins), or undefined. As libpq does, a file that is not a plain file, or that its
 * group or others may access at all, is ignored with a warning: a password file others can read
 * protects nothing. A missing file is silently ignored. A Unix-socket host also matches
 * `localhost` lines.
 */
export function lookupPgpass(file: string, query: PgpassQuery): string | undefined {
  let stat;
  try {
    stat = statSync(file);
  } catch {
    return undefined;
  }
  if (!stat.isFile()) {
    warnOnce(
      `pgpass-type:${file}`,
      'WARDEN_W_PGPASS_IGNORED',
      `password file ${file} is not a plain file; ignored`,
    );
    return undefined;
  }
  if ((stat.mode & 0o077) !== 0) {
    warnOnce(
      `pgpass-mode:${file}`,
      'WARDEN_W_PGPASS_IGNORED',
      `password file ${file} has group or world access; ignored (chmod 0600 ${file})`,
    );
    return undefined;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  return matchPgpass(text, query);
}

/** The first line of `text` matching `query`, as libpq matches it. */
export function matchPgpass(text: string, query: PgpassQuery): string | undefined {
  const hosts = query.host.startsWith('/') ? [query.host, 'localhost'] : [query.host];
  const wanted = [hosts, [String(query.port)], [query.database], [query.user]];
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const fields = splitLine(line);
    if (fields.length < 5) continue;
    const matches = wanted.every((values, i) => fields[i]!.any || values.includes(fields[i]!.value));
    if (matches) return fields[4]!.value;
  }
  return undefined;
}

/**
 * Splits at unescaped colons into at most five fields, undoing `\:` and `\\`. A field written
 * as a bare `*` matches anything; an escaped `\*` is a literal star.
 */
function splitLine(line: string): Array<{ value: string; any: boolean }> {
  const fields: Array<{ value: string; any: boolean }> = [];
  let current = '';
  let raw = '';
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (char === '\\' && i + 1 < line.length) {
      current += line[++i];
      raw += `\\${line[i]}`;
    } else if (char === ':' && fields.length < 4) {
      fields.push({ value: current, any: raw === '*' });
      current = raw = '';
    } else {
      current += char;
      raw += char;
    }
  }
  fields.push({ value: current, any: false });
  return fields;
}
