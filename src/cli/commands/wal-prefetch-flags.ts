import { WardenError } from '../../errors.ts';
import { DEFAULT_PREFETCH } from '../../restore/wal-get.ts';

/** Seconds without a request or a consumed segment after which the prefetcher stops. */
export const DEFAULT_PREFETCH_IDLE_SECONDS = 10;

/** `--prefetch N` (0–64) and `--prefetch-idle SECONDS` (1–3600) of `wal get` / `wal prefetch`. */
export function parsePrefetchFlags(flags: { prefetch?: string; prefetchIdle?: string }): {
  window: number;
  idleMs: number;
} {
  const window = flags.prefetch === undefined ? DEFAULT_PREFETCH : Number(flags.prefetch);
  if (!Number.isInteger(window) || window < 0 || window > 64)
    throw new WardenError('WARDEN_E_USAGE', `--prefetch ${flags.prefetch}: expected a whole number 0 to 64`);
  const idle = flags.prefetchIdle === undefined ? DEFAULT_PREFETCH_IDLE_SECONDS : Number(flags.prefetchIdle);
  if (!Number.isFinite(idle) || idle < 1 || idle > 3600)
    throw new WardenError(
      'WARDEN_E_USAGE',
      `--prefetch-idle ${flags.prefetchIdle}: expected seconds, 1 to 3600`,
    );
  return { window, idleMs: idle * 1000 };
}
