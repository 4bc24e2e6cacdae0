// Twin of the Warden tool's copy of this module (src/postgres or src/util); keep the two in step.

/** Warnings already printed in this process, by key (one per host and kind). */
const printed = new Set<string>();

/**
 * Prints a security warning once per process for `key` (e.g. `tls-disabled:db.internal:5432`),
 * through Node's `process.emitWarning` so an application embedding the library can route it
 * (`process.on('warning', ...)`) and the CLI shows it on stderr. Never pass secrets in `message`.
 */
export function warnOnce(key: string, code: string, message: string): void {
  if (printed.has(key)) return;
  printed.add(key);
  process.emitWarning(message, { type: 'WardenSecurityWarning', code });
}
