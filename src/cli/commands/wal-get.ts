import { walGet } from '../../restore/wal-get.ts';
import type { CommandContext } from '../context.ts';
import { parsePrefetchFlags } from './wal-prefetch-flags.ts';

export interface WalGetFlags {
  prefetch?: string;
  spoolDir?: string;
  prefetchIdle?: string;
}

/** Exit status of `warden wal get` for a file the repository does not hold (see docs/wal-archive-commands.md). */
export const WAL_GET_NOT_FOUND = 1;

/**
 * `warden wal get %f %p` (restore_command), when bin/wal-get-fast.js did not serve the file from
 * the prefetcher's spool. Success prints nothing (PostgreSQL logs the command's stderr); a file
 * the repository does not hold exits 1 without a word, as PostgreSQL expects for "not in the
 * archive" (it asks past the end of every archive). Any other failure is reported and exits with
 * its code's status (2–8): all below 126, so PostgreSQL retries in standby mode instead of
 * aborting. The prefetch flags are checked here (the fast path reads them before any check).
 */
export async function walGetCommand(
  context: CommandContext,
  fileName: string,
  destination: string,
  flags: WalGetFlags,
): Promise<number> {
  parsePrefetchFlags(flags);
  const result = await walGet({
    store: context.store,
    fileName,
    destination,
    keys: await context.readKeys(),
  });
  if (context.json) process.stdout.write(`${JSON.stringify({ file: fileName, ...result })}\n`);
  return result.found ? 0 : WAL_GET_NOT_FOUND;
}
