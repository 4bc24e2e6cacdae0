import type { Logger } from 'pino';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { archivedEnd } from '../repository/archived-end.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import type { Repository } from '../repository/repository.ts';
import { readWalInventory } from '../repository/wal-archive.ts';
import { sleep } from '../util/backoff.ts';
import type { Lsn } from '../wal/lsn.ts';
import type { BackupWalSource } from './wal-coverage.ts';
import { WalReceiver } from './wal-receiver.ts';

const POLL_MS = 200;

export interface WalDeliveryOptions {
  connection: ConnectionConfig;
  store: ObjectStore;
  repository: Repository;
  /** Where the WAL comes from (see planBackupWal). */
  source: BackupWalSource;
  /** The repository must hold the WAL before this position. */
  target: Lsn;
  /** Count only complete, archived segments (the target is a segment boundary after a switch). */
  segmentsOnly: boolean;
  timeoutMs: number;
  logger: Logger;
  signal?: AbortSignal;
}

/**
 * Gets the WAL before `target` into the repository the planned way: waits for the running stream,
 * or runs a short receiver through the repository's idle slot or a temporary one until it has
 * passed `target`. Returns what failed, if anything (the caller words it); a timeout is not an
 * error here: the caller checks `walDurableTo` afterwards.
 */
export async function deliverWal(options: WalDeliveryOptions): Promise<unknown> {
  const { source, repository, target, segmentsOnly } = options;
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  if (source.kind === 'stream') {
    while (!signal.aborted && !(await walDurableTo(repository, target, segmentsOnly)))
      await sleep(POLL_MS).catch(() => undefined);
    return undefined;
  }
  const receiver = new WalReceiver({
    connection: options.connection,
    store: options.store,
    ...(source.kind === 'slot'
      ? { slotName: source.name, maxAttempts: 1 }
      : { temporarySlot: { client: source.client, name: source.name } }),
    keys: repository.keys,
    logger: options.logger,
    stopAtLsn: target,
    signal,
  });
  try {
    await receiver.run();
    return undefined;
  } catch (error) {
    return error;
  }
}

/**
 * Whether the repository holds the WAL before `target`: as archived (complete) segments when
 * `segmentsOnly` (the switched segment must be archived, not only in the partial segment), else
 * counting the partial segment too (made durable by every flush).
 */
export async function walDurableTo(
  repository: Repository,
  target: Lsn,
  segmentsOnly: boolean,
): Promise<boolean> {
  const inventory = await readWalInventory(repository);
  const counted = segmentsOnly ? { ...inventory, partials: [] } : inventory;
  const timelines = new Set([...counted.segments.keys(), ...counted.partials.map((p) => p.timeline)]);
  return [...timelines].some((tli) => archivedEnd(counted, tli, repository.meta.walSegmentSize) >= target);
}
