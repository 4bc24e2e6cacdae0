import type { Lsn } from '../wal/lsn.ts';
import type { TimelineHistoryEntry } from '../wal/timeline-history.ts';

/**
 * True when WAL of `timeline` can follow a backup taken on `backupTimeline` at `backupStart`:
 * the same timeline, or a later one whose history says it branched off `backupTimeline` after
 * the backup started. A later timeline without a known history may descend from anything.
 */
export function onBranchOf(
  timeline: number,
  backupTimeline: number,
  backupStart: Lsn,
  histories: ReadonlyMap<number, readonly TimelineHistoryEntry[]> | undefined,
): boolean {
  if (timeline === backupTimeline) return true;
  if (timeline < backupTimeline) return false;
  const history = histories?.get(timeline);
  if (!history) return true;
  const entry = history.find((e) => e.timeline === backupTimeline);
  return entry !== undefined && backupStart < entry.switchLsn;
}
