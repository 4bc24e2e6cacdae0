import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { WardenError } from '../errors.ts';
import { describeConnection, type ConnectionConfig } from './connection-config.ts';
import { lookupPgpass, pgpassPath } from './pgpass.ts';

/** What the lookup needs: where the connection goes and the configured sources. */
export type PasswordTarget = Pick<
  ConnectionConfig,
  'host' | 'port' | 'user' | 'database' | 'password' | 'passwordFile' | 'passwordCommand'
>;

/** How long a password command may take (a Vault or Secrets Manager call). */
const COMMAND_TIMEOUT_MS = 30_000;

/**
 * The password for one connection, looked up when the server asks for one (so a rotated file or
 * a short-lived secret from a command is fetched again on every connection). Order, first found
 * wins: `password` given inline (URL or config), `passwordFile`, `passwordCommand`, PGPASSWORD,
 * then the libpq password file (PGPASSFILE or ~/.pgpass). For a replication connection the
 * password file is searched for the database name `replication`, as libpq does.
 */
export async function resolvePassword(
  config: PasswordTarget,
  options: { replication?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<string | undefined> {
  const env = options.env ?? process.env;
  if (config.password !== undefined) return config.password;
  if (config.passwordFile) return readPasswordFile(config.passwordFile);
  if (config.passwordCommand) return runPasswordCommand(config.passwordCommand);
  // An empty PGPASSWORD is no password, as for libpq: the password file is asked next.
  if (env.PGPASSWORD) return env.PGPASSWORD;
  return lookupPgpass(pgpassPath(env), {
    host: config.host,
    port: config.port,
    database: options.replication ? 'replication' : config.database,
    user: config.user,
  });
}

/**
 * Which source `resolvePassword` takes the password from, named for messages (never the value):
 * when the server rejects a password, the operator learns which file or variable to fix.
 */
export function passwordSourceOf(config: PasswordTarget, env: NodeJS.ProcessEnv = process.env): string {
  if (config.password !== undefined) return 'the connection URL or config';
  if (config.passwordFile) return `passwordFile ${config.passwordFile}`;
  if (config.passwordCommand) return `passwordCommand ${config.passwordCommand[0]}`;
  if (env.PGPASSWORD) return 'PGPASSWORD';
  return `the password file ${pgpassPath(env)}`;
}

/** Where a password could have come from, for the message when none did. */
export function passwordSourcesHint(config: PasswordTarget, env: NodeJS.ProcessEnv = process.env): string {
  return (
    `No password for ${describeConnection(config)}: give one with --password-file FILE, ` +
    `--password-command CMD, cluster.passwordFile / passwordCommand in warden.yaml, PGPASSWORD, ` +
    `or a line in ${pgpassPath(env)} (libpq format, mode 0600).`
  );
}

/** The first line of a password file (trailing newline and spaces dropped). */
export async function readPasswordFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `passwordFile: cannot read ${file}`, {
      hint: 'Name a file readable by the user Warden runs as (mode 0600 recommended).',
      details: { field: 'passwordFile', file, errno: (cause as { code?: string }).code },
      cause,
    });
  }
  return firstLine(text);
}

/**
 * Runs `argv` directly (no shell: no expansion, pipes or quoting beyond what splitCommand did)
 * and returns the first line of what it prints. The output is never logged or put in an error;
 * on failure only the program name and exit status are reported (its arguments may hold tokens).
 */
export function runPasswordCommand(argv: readonly string[]): Promise<string> {
  const program = argv[0]!;
  return new Promise((resolve, reject) => {
    execFile(
      program,
      argv.slice(1),
      { timeout: COMMAND_TIMEOUT_MS, maxBuffer: 64 * 1024, encoding: 'utf8', windowsHide: true },
      (error, stdout) => {
        if (error) {
          const how = (error as { code?: unknown }).code;
          const signal = (error as { signal?: unknown }).signal;
          const status =
            typeof how === 'number'
              ? `exited with status ${how}`
              : signal
                ? `was stopped by ${String(signal)}${error.killed ? ` after ${COMMAND_TIMEOUT_MS / 1000} s` : ''}`
                : `could not run (${String(how)})`;
          reject(
            new WardenError('WARDEN_E_SECRET_UNAVAILABLE', `password command ${program} ${status}`, {
              hint: 'Run the command yourself as the user Warden runs as to see its error.',
              details: { program, exitCode: typeof how === 'number' ? how : undefined },
            }),
          );
          return;
        }
        const password = firstLine(stdout);
        if (password === '') {
          reject(
            new WardenError('WARDEN_E_SECRET_UNAVAILABLE', `password command ${program} printed nothing`, {
              hint: 'The command must print the password as the first line of its standard output.',
              details: { program },
            }),
          );
          return;
        }
        resolve(password);
      },
    );
  });
}

function firstLine(text: string): string {
  return (text.split('\n')[0] ?? '').replace(/\r$/, '').trimEnd();
}

/**
 * Splits a command line into words the way a shell would for simple cases, without running a
 * shell: whitespace separates words, '…' is literal, "…" allows \" and \\, a backslash outside
 * quotes escapes the next character. No variables, globbing, pipes or redirections; for those
 * write the command as `sh -c '…'` explicitly.
 */
export function splitCommand(line: string, field: string): string[] {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (quote === "'") {
      if (char === "'") quote = undefined;
      else current += char;
    } else if (quote === '"') {
      if (char === '"') quote = undefined;
      else if (char === '\\' && (line[i + 1] === '"' || line[i + 1] === '\\')) current += line[++i];
      else current += char;
    } else if (char === "'" || char === '"') {
      quote = char;
      inWord = true;
    } else if (char === '\\' && i + 1 < line.length) {
      current += line[++i];
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      current += char;
      inWord = true;
    }
  }
  if (quote) {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: unterminated ${quote} quote`, {
      details: { field },
    });
  }
  if (inWord) words.push(current);
  if (words.length === 0) {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: empty command`, { details: { field } });
  }
  return words;
}
