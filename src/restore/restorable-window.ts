import type { BackupRecord } from '../repository/backup-catalog.ts';
import type { SegmentRecord, WalInventory } from '../repository/wal-archive.ts';
import { formatLsn, parseLsn, segmentName, type Lsn } from '../wal/lsn.ts';
import { chainPieces, chainSegments, timelineChain } from './timeline-chain.ts';

export interface WalGap {
  timeline: number;
  /** First missing byte and where WAL resumes. */
  from: string;
  to: string;
  firstMissingSegment: string;
}

export interface RestorableWindow {
  /** Earliest point in time a restore can reach: the oldest usable backup's consistency point. */
  earliest?: string;
  /** Latest point in time with all WAL durable (newest commit, or when the stream was last caught up). */
  latest?: string;
  /** LSN up to which the archive is continuous on the newest timeline. */
  latestLsn?: string;
  timeline?: number;
  gaps: WalGap[];
}

/**
 * Continuous WAL ranges for recovery onto `timeline`: archived segments (complete or cut) and
 * partial segments of the timeline and its ancestors, each within its part of the history.
 */
export function walRanges(
  inventory: WalInventory,
  timeline: number,
  segmentSize: number,
): Array<{ start: Lsn; end: Lsn; timeline: number }> {
  const ranges: Array<{ start: Lsn; end: Lsn; timeline: number }> = [];
  for (const piece of chainPieces(inventory, timelineChain(inventory, timeline), segmentSize)) {
    const last = ranges.at(-1);
    if (last && piece.start <= last.end) {
      if (piece.end > last.end) {
        last.end = piece.end;
        last.timeline = piece.timeline;
      }
    } else {
      ranges.push({ ...piece });
    }
  }
  return ranges;
}

export function newestTimeline(inventory: WalInventory): number | undefined {
  const timelines = [...inventory.segments.keys(), ...inventory.partials.map((p) => p.timeline)];
  return timelines.length ? Math.max(...timelines) : undefined;
}

/**
 * The restorable window over the newest timeline's continuous WAL, starting at the oldest backup
 * whose WAL runs without a gap to the end. Gaps are named so `backup list` can show them.
 */
export function restorableWindow(
  backups: readonly BackupRecord[],
  inventory: WalInventory,
  segmentSize: number,
  latestCommit?: Date,
): RestorableWindow {
  const timeline = newestTimeline(inventory);
  if (timeline === undefined) return { gaps: [] };
  const ranges = walRanges(inventory, timeline, segmentSize);
  const gaps: WalGap[] = [];
  for (let i = 1; i < ranges.length; i += 1) {
    const from = ranges[i - 1]!.end;
    const gapTimeline = ranges[i - 1]!.timeline;
    gaps.push({
      timeline: gapTimeline,
      from: formatLsn(from),
      to: formatLsn(ranges[i]!.start),
      firstMissingSegment: segmentName(gapTimeline, from, segmentSize),
    });
  }
  const lastRange = ranges.at(-1);
  if (!lastRange) return { gaps, timeline };
  const usable = backups.filter(
    (backup) => parseLsn(backup.startLsn) >= lastRange.start && parseLsn(backup.endLsn) <= lastRange.end,
  );
  const latestTimes: number[] = [];
  if (latestCommit) latestTimes.push(latestCommit.getTime());
  for (const record of chainSegments(inventory, timelineChain(inventory, timeline), segmentSize)) {
    if (record.lastCommitTime) latestTimes.push(Date.parse(record.lastCommitTime));
  }
  const state = inventory.streamState;
  if (state && state.timeline === timeline && parseLsn(state.flushedLsn) <= lastRange.end) {
    latestTimes.push(Date.parse(state.caughtUpAt));
  }
  const oldest = usable[0];
  const windowStart = oldest ? Date.parse(oldest.endTime) : undefined;
  const latest = latestTimes.length ? Math.max(...latestTimes, windowStart ?? 0) : windowStart;
  return {
    ...(oldest ? { earliest: oldest.endTime } : {}),
    ...(latest !== undefined && oldest ? { latest: new Date(latest).toISOString() } : {}),
    latestLsn: formatLsn(lastRange.end),
    timeline,
    gaps,
  };
}

/** Segments of one timeline from `from` (inclusive segment) onwards, in order. */
export function segmentsFrom(
  inventory: WalInventory,
  timeline: number,
  from: Lsn,
  segmentSize: number,
): SegmentRecord[] {
  const first = segmentName(timeline, from, segmentSize);
  return (inventory.segments.get(timeline) ?? []).filter((record) => record.segment >= first);
}
