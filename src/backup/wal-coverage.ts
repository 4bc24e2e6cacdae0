import type { Logger } from 'pino';
import { WardenError } from '../errors.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import type { Repository } from '../repository/repository.ts';
import { lockHolder } from '../repository/repository-lock.ts';
import { readWalInventory, type WalInventory } from '../repository/wal-archive.ts';
import { sleep } from '../util/backoff.ts';
import { formatLsn, parseLsn, type Lsn } from '../wal/lsn.ts';
import { WalReceiver } from './wal-receiver.ts';

const WAIT_FOR_RECEIVER_MS = 120_000;

/** The highest LSN before which the archive holds every byte, per timeline (complete + partial). */
export function archivedEnd(inventory: WalInventory, timeline: number, segmentSize: number): Lsn {
  let end = 0n;
  for (const record of inventory.segments.get(timeline) ?? []) {
    const segmentEnd = parseLsn(record.startLsn) + BigInt(record.validBytes);
    if (segmentEnd > end) end = segmentEnd;
  }
  for (const partial of inventory.partials) {
    if (partial.timeline === timeline && partial.startLsn + BigInt(partial.validBytes) > end) {
      end = partial.startLsn + BigInt(partial.validBytes);
    }
  }
  return end > 0n || segmentSize > 0 ? end : 0n;
}

/**
 * A base backup taken with `WAL false` is only restorable with the WAL from its start to its
 * end LSN. When a WAL receiver already runs for this repository, wait for it to pass `endLsn`;
 * otherwise stream the missing WAL now through the slot (catch-up mode).
 */
export async function ensureWalArchived(options: {
  connection: ConnectionConfig;
  store: ObjectStore;
  slotName: string;
  repository: Repository;
  endLsn: Lsn;
  logger: Logger;
  signal?: AbortSignal;
}): Promise<void> {
  const segmentSize = options.repository.meta.walSegmentSize;
  if (await lockHolder(options.store, 'wal-stream')) {
    const deadline = Date.now() + WAIT_FOR_RECEIVER_MS;
    while (Date.now() < deadline) {
      const inventory = await readWalInventory(options.repository);
      const timelines = [...inventory.segments.keys(), ...inventory.partials.map((p) => p.timeline)];
      if (timelines.some((tli) => archivedEnd(inventory, tli, segmentSize) >= options.endLsn)) return;
      await sleep(200, options.signal);
    }
    throw new WardenError(
      'WARDEN_E_WAL_GAP',
      `the running WAL receiver did not archive up to ${formatLsn(options.endLsn)} in time`,
      {
        hint: 'Check `warden status`: the WAL stream may be stalled.',
        details: { endLsn: formatLsn(options.endLsn) },
      },
    );
  }
  const receiver = new WalReceiver({
    connection: options.connection,
    store: options.store,
    slotName: options.slotName,
    logger: options.logger,
    stopAtLsn: options.endLsn,
    // The backup's own keys: its recipients encrypt the segments, its signing key signs their records.
    keys: options.repository.keys,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  await receiver.run();
}
