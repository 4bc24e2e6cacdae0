import { parseLsn, type Lsn } from '../wal/lsn.ts';
import type { WalInventory } from './wal-archive.ts';

// A question about the archive's inventory alone: the WAL receiver's slot bookkeeping and the
// backup's wait for its WAL both ask it, so it lives with the inventory, not with either.

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
