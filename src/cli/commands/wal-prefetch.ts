import path from 'node:path';
import { WardenError } from '../../errors.ts';
import { prefetchWal } from '../../restore/wal-prefetcher.ts';
import { spoolIsPrivate, WalSpool } from '../../restore/wal-spool.ts';
import type { CommandContext } from '../context.ts';
import { parsePrefetchFlags } from './wal-prefetch-flags.ts';

export interface WalPrefetchFlags {
  spool: string;
  prefetch?: string;
  prefetchIdle?: string;
}

/**
 * `warden wal prefetch <segment> --spool DIR` (hidden): the background prefetcher `wal get`'s
 * fast path starts detached on a miss, with the same flags as its own restore_command. Exits 0
 * when it stops by itself, or at once when another prefetcher holds the spool.
 */
export async function walPrefetchCommand(
  context: CommandContext,
  first: string,
  flags: WalPrefetchFlags,
  signal: AbortSignal,
): Promise<number> {
  const { window, idleMs } = parsePrefetchFlags(flags);
  const dir = path.resolve(flags.spool);
  if (window === 0 || !(await spoolIsPrivate(dir)))
    throw new WardenError(
      'WARDEN_E_USAGE',
      `--spool ${flags.spool}: not a spool directory private to this user`,
    );
  await prefetchWal({
    store: context.store,
    keys: await context.readKeys(),
    spool: new WalSpool(dir),
    first,
    window,
    idleMs,
    signal,
  });
  return 0;
}
