/**
 * Cleanup hooks that run when the test process exits or is interrupted, so a failed test never
 * leaves a server or a temp directory behind. Returns a function that unregisters the hook.
 */
const hooks = new Set<() => void>();
let installed = false;

export function onExit(hook: () => void): () => void {
  if (!installed) {
    installed = true;
    const runAll = () => {
      for (const h of hooks) {
        try {
          h();
        } catch {
          // best effort: keep running the other hooks
        }
      }
      hooks.clear();
    };
    process.once('exit', runAll);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        runAll();
        process.exit(130);
      });
    }
  }
  hooks.add(hook);
  return () => hooks.delete(hook);
}
