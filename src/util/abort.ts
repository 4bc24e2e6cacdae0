import { isWardenError, WardenError } from '../errors.ts';

/**
 * The error of an operation stopped through its AbortSignal (Ctrl-C, shutdown). `cause` keeps
 * what the operation failed with while it was being stopped (a connection torn down, a stream
 * destroyed), which is a consequence of the stop, not a fault of its own.
 */
export function abortedError(what: string, cause?: unknown): WardenError {
  if (isWardenError(cause, 'WARDEN_E_ABORTED')) return cause;
  return new WardenError('WARDEN_E_ABORTED', `${what} was interrupted`, {
    hint: 'What it had written so far was removed and its locks released: run it again.',
    ...(cause === undefined ? {} : { cause }),
  });
}

export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortedError(what);
}

/**
 * Waits for `work` unless the signal fires first, then rejects at once with WARDEN_E_ABORTED.
 * Only for work whose result can be dropped (a read): it keeps running unobserved, so a stalled
 * store cannot hold up the stop.
 */
export function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(abortedError(what));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => undefined);
      reject(abortedError(what));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}

/**
 * Runs `action` when the signal fires — at once if it already has. A listener added to a
 * signal that fired earlier is never called: a stop that arrived while a connection was being
 * opened would otherwise be missed, and the work would run on until something else ends it.
 * Returns the function that removes the listener.
 */
export function onAbort(signal: AbortSignal | undefined, action: () => void): () => void {
  if (!signal) return () => undefined;
  if (signal.aborted) {
    action();
    return () => undefined;
  }
  signal.addEventListener('abort', action, { once: true });
  return () => signal.removeEventListener('abort', action);
}
