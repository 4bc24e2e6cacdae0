import type { WalInventory } from '../repository/wal-archive.ts';
import type { Lsn } from '../wal/lsn.ts';
import { archivedEnd } from '../repository/archived-end.ts';

/** Where the repository's WAL stops on the way to a timeline: a position, or `complete` (ended at its switch). */
type ContinuityEnd = { timeline: number; end: Lsn } | 'complete' | undefined;

/**
 * The hole a stream resuming at `lsn` on `timeline` would leave: from where the repository's WAL
 * ends (exactly: a segment archived short ends where its bytes end, not at the segment's end) up
 * to `lsn`. Undefined when there is none, or when the repository has no WAL yet (a new range).
 *
 * A timeline the server left at a switch is complete once the repository has its WAL up to the
 * switch point, whatever the size of its last (partial) segment: that is not a gap. A timeline
 * without WAL of its own continues its parent's from the switch point.
 */
export function gapAtResume(
  inventory: WalInventory,
  timeline: number,
  lsn: Lsn,
  segmentSize: number,
): { timeline: number; from: Lsn; to: Lsn } | undefined {
  const end = continuityEnd(inventory, timeline, segmentSize, new Set());
  if (end === undefined || end === 'complete' || end.end >= lsn) return undefined;
  return { timeline: end.timeline, from: end.end, to: lsn };
}

function continuityEnd(
  inventory: WalInventory,
  timeline: number,
  segmentSize: number,
  seen: Set<number>,
): ContinuityEnd {
  if (seen.has(timeline)) return undefined; // a history that loops is not followed
  seen.add(timeline);
  const end = archivedEnd(inventory, timeline, segmentSize);
  const switchLsn = switchPoint(inventory, timeline);
  if (end > 0n) return switchLsn !== undefined && end >= switchLsn ? 'complete' : { timeline, end };
  const parent = inventory.historyEntries?.get(timeline)?.at(-1);
  if (!parent) return undefined;
  const parentEnd = continuityEnd(inventory, parent.timeline, segmentSize, seen);
  // The parent's WAL up to the switch is this timeline's WAL up to there too.
  if (parentEnd === 'complete') return { timeline, end: parent.switchLsn };
  return parentEnd;
}

/** Where `timeline` ended, from any stored history that names it as an ancestor. */
function switchPoint(inventory: WalInventory, timeline: number): Lsn | undefined {
  for (const entries of inventory.historyEntries?.values() ?? []) {
    const entry = entries.find((e) => e.timeline === timeline);
    if (entry) return entry.switchLsn;
  }
  return undefined;
}
