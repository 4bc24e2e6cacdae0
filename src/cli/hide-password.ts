/** `postgres://user:secret@` → `postgres://user:***@`, wherever it sits in an argument. */
const URL_PASSWORD = /(postgres(?:ql)?:\/\/[^:/@\s]*):[^@\s]*@/gi;

/**
 * Rewrites this process's command line as `ps` and /proc/<pid>/cmdline show it (Node's
 * `process.title`, which overwrites the original argv memory on Linux) with the password of any
 * postgres:// URL masked. It only shortens the exposure — the password was visible from exec
 * until here, and may be in shell history — which is why a password in --db still warns.
 */
export function hidePasswordsFromProcessList(argv: readonly string[] = process.argv): void {
  const masked = argv.map((arg) => arg.replace(URL_PASSWORD, '$1:***@'));
  if (masked.every((arg, i) => arg === argv[i])) return;
  process.title = masked.join(' ');
}
