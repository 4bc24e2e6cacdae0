import type { BackupRecord } from '../repository/backup-catalog.ts';
import { segmentDataKey, timelineDir, type WalInventory } from '../repository/wal-archive.ts';
import { parseLsn, segmentStart, type Lsn } from '../wal/lsn.ts';
import type { TimelineHistoryEntry } from '../wal/timeline-history.ts';
import { onBranchOf } from './timeline-branch.ts';

export interface WalSegmentRef {
  timeline: number;
  segment: string;
  /** Objects to delete, in order: the record first (uncommits the segment), then the data. */
  keys: [record: string, data: string];
}

export interface WalRange {
  timeline: number;
  first: string;
  last: string;
  count: number;
  /**
   * For kept WAL: the oldest kept backup that needs the range's first segment, `archive-end` for
   * the archive's last segment, or `no-valid-backup`.
   */
  neededBy?: string;
}

/** The WAL half of an expiry plan. */
export interface WalPlan {
  /** Segments to delete, oldest first, so an interrupted run leaves a contiguous archive. */
  walToDelete: WalSegmentRef[];
  /** The same segments as runs of consecutive segments per timeline, for reports. */
  walDeleteRanges: WalRange[];
  walKept: {
    segments: WalRange[];
    /** History files always stay: they are tiny and restore needs them to follow timelines. */
    histories: number[];
    /** The segment being received is never deleted. */
    partials: string[];
  };
}

export interface WalPlanOptions {
  segmentSize: number;
  histories?: ReadonlyMap<number, readonly TimelineHistoryEntry[]>;
}

export function planWal(
  kept: readonly BackupRecord[],
  inventory: WalInventory,
  options: WalPlanOptions,
  keepEverything: boolean,
): WalPlan {
  const starts = kept.map((b) => ({
    id: b.id,
    timeline: b.timeline,
    start: parseLsn(b.startLsn),
    firstSegment: segmentStart(parseLsn(b.startLsn), options.segmentSize),
  }));
  // The archive's last segment stays whatever the backups need: the WAL receiver resumes after
  // it, and `backup list` measures the window's end by it.
  const endTimeline = Math.max(...inventory.segments.keys());
  const archiveEnd = inventory.segments.get(endTimeline)?.at(-1);
  const toDelete: Array<{ timeline: number; segment: string; start: Lsn }> = [];
  const keptRanges: WalRange[] = [];
  for (const timeline of [...inventory.segments.keys()].sort((a, b) => a - b)) {
    let run: WalRange | undefined;
    let previousStart: Lsn | undefined;
    for (const record of inventory.segments.get(timeline) ?? []) {
      const start = parseLsn(record.startLsn);
      const follows = previousStart !== undefined && previousStart + BigInt(options.segmentSize) === start;
      previousStart = start;
      const neededBy = keepEverything
        ? 'no-valid-backup'
        : (starts.find(
            (b) => start >= b.firstSegment && onBranchOf(timeline, b.timeline, b.start, options.histories),
          )?.id ?? (record === archiveEnd ? 'archive-end' : undefined));
      if (neededBy === undefined) {
        toDelete.push({ timeline, segment: record.segment, start });
        run = undefined;
      } else if (run && follows && run.neededBy === neededBy) {
        run.last = record.segment;
        run.count += 1;
      } else {
        run = { timeline, first: record.segment, last: record.segment, count: 1, neededBy };
        keptRanges.push(run);
      }
    }
  }
  toDelete.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.timeline - b.timeline));
  return {
    walToDelete: toDelete.map(({ timeline, segment }) => ({
      timeline,
      segment,
      keys: [`${timelineDir(timeline)}${segment}.json`, segmentDataKey(timeline, segment)],
    })),
    walDeleteRanges: runs(toDelete, options.segmentSize),
    walKept: {
      segments: keptRanges,
      histories: [...inventory.histories],
      partials: inventory.partials.map((p) => p.key),
    },
  };
}

function runs(
  segments: ReadonlyArray<{ timeline: number; segment: string; start: Lsn }>,
  segmentSize: number,
): WalRange[] {
  const byTimeline = [...segments].sort((a, b) => a.timeline - b.timeline || (a.start < b.start ? -1 : 1));
  const result: WalRange[] = [];
  let previous: { timeline: number; start: Lsn } | undefined;
  for (const s of byTimeline) {
    const last = result.at(-1);
    if (
      last &&
      previous &&
      previous.timeline === s.timeline &&
      previous.start + BigInt(segmentSize) === s.start
    ) {
      last.last = s.segment;
      last.count += 1;
    } else {
      result.push({ timeline: s.timeline, first: s.segment, last: s.segment, count: 1 });
    }
    previous = s;
  }
  return result;
}
