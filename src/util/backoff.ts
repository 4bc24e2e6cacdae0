import { WardenError } from '../errors.ts';

/** Exponential backoff with ±50 % jitter: base·2^attempt, capped. */
export function backoffDelay(attempt: number, baseMs: number, capMs: number): number {
  const exponential = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(exponential * (0.5 + Math.random()));
}

/** Sleeps, waking early (with WARDEN_E_ABORTED) when the signal fires. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw new WardenError('WARDEN_E_ABORTED', 'cancelled');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new WardenError('WARDEN_E_ABORTED', 'cancelled'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
