import { Writable } from 'node:stream';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Keys whose values never reach a log line. */
export const REDACTED_PATHS = [
  'password',
  '*.password',
  'connectionString',
  '*.connectionString',
  'url',
  '*.url',
  'secret',
  '*.secret',
  'identity',
  '*.identity',
];

/** The library is silent unless the caller injects a logger. */
export const silentLogger: Logger = pino({ level: 'silent' });

/**
 * How log lines look: `json` (one JSON object a line, for collectors) or `text` (one readable
 * line, `warden warn: message key=value`, beside the human output of a terminal).
 */
export type LogFormat = 'json' | 'text';

/** WARDEN_LOG_FORMAT when set; otherwise text on a terminal and JSON everywhere else. */
export function defaultLogFormat(env: NodeJS.ProcessEnv = process.env): LogFormat {
  if (env.WARDEN_LOG_FORMAT === 'json' || env.WARDEN_LOG_FORMAT === 'text') return env.WARDEN_LOG_FORMAT;
  return process.stderr.isTTY ? 'text' : 'json';
}

/**
 * A logger for the CLI and daemon: always on stderr (stdout carries the command's own output,
 * human or `--json`), secrets redacted.
 */
export function createLogger(
  level: string = process.env.WARDEN_LOG_LEVEL ?? 'info',
  options: { format?: LogFormat; destination?: NodeJS.WritableStream } = {},
): Logger {
  const format = options.format ?? defaultLogFormat();
  const destination: DestinationStream =
    format === 'text'
      ? textLines(options.destination ?? process.stderr)
      : ((options.destination as DestinationStream | undefined) ?? pino.destination(2));
  return pino({ level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, destination);
}

const LEVELS: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};
const OMITTED = new Set(['level', 'time', 'pid', 'hostname', 'msg']);

/** Turns pino's JSON lines into `warden <level>: <msg> key=value …` lines. */
function textLines(sink: NodeJS.WritableStream): DestinationStream {
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          sink.write(`${line}\n`);
          continue;
        }
        const fields = Object.entries(entry)
          .filter(([key]) => !OMITTED.has(key))
          .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
        const level = LEVELS[entry.level as number] ?? String(entry.level);
        sink.write(
          `warden ${level}: ${String(entry.msg ?? '')}${fields.length ? ` ${fields.join(' ')}` : ''}\n`,
        );
      }
      callback();
    },
  });
  return stream as unknown as DestinationStream;
}
