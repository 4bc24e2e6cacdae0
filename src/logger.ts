import { pino, type Logger } from 'pino';

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

/** A logger for the CLI and daemon: JSON lines on stderr, secrets redacted. */
export function createLogger(level: string = process.env.WARDEN_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, pino.destination(2));
}
