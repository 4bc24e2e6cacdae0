import type { BackupRecord } from './backup-catalog.ts';
import type { SegmentRecord, WalInventory } from './wal-archive.ts';
import { formatLsn, parseLsn, segmentName, type Lsn } from '../wal/lsn.ts';
import { completeChains } from './backup-chain.ts';
import {
  chainPieces,
  chainSegments,
  linkOf,
  onChain,
  timelineChain,
  type ChainLink,
} from './timeline-chain.ts';

export interface WalGap {
  timeline: number;
  /** First missing byte and where WAL resumes. */
  from: string;
  to: string;
  firstMissingSegment: string;
}

/**
 * One stretch of time a restore can reach: WAL continuous from the start of the backups that
 * anchor it to `latestLsn`. Ranges are separated by WAL gaps; inside one, every point from
 * `earliest` to `latest` can be restored.
 */
export interface RestorableRange {
  /** Timeline the range ends on (it may begin on an ancestor). */
  timeline: number;
  /** Earliest point: the consistency point (time and LSN) of the oldest backup anchoring it. */
  earliest: string;
  earliestLsn: string;
  /** Latest point: its newest commit, or when the stream was last caught up inside it. */
  latest: string;
  /** WAL is continuous up to here; a gap (or the end of the archive) follows. */
  latestLsn: string;
  /** Backups a restore into this range can start from, in catalog order. */
  backups: string[];
  /** The WAL gap that ends this range; absent for the range at the archive's end. */
  gapAfter?: WalGap;
}

/**
 * What can be restored. The top-level fields describe the newest range (what `--latest`
 * restores to); `ranges` lists every range, oldest first, and `gaps` every hole in the WAL of
 * the newest timeline's history.
 */
export interface RestorableWindow {
  /** Earliest point of the newest range: its oldest backup's consistency point. */
  earliest?: string;
  /** Latest point of the newest range (newest commit, or when the stream was last caught up). */
  latest?: string;
  /**
   * LSN up to which the archive is continuous on the newest timeline (its end): past the newest
   * range's `latestLsn` when WAL after a gap has no backup to start from yet.
   */
  latestLsn?: string;
  timeline?: number;
  gaps: WalGap[];
  /** Every restorable range, oldest first (empty when nothing can be restored). */
  ranges: RestorableRange[];
}

/**
 * Continuous WAL ranges for recovery onto `timeline`: archived segments (complete or cut) and
 * partial segments of the timeline and its ancestors, each within its part of the history.
 */
export function walRanges(inventory: WalInventory, timeline: number, segmentSize: number): WalRange[] {
  const ranges: WalRange[] = [];
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

export interface WalRange {
  start: Lsn;
  end: Lsn;
  timeline: number;
}

export function newestTimeline(inventory: WalInventory): number | undefined {
  const timelines = [...inventory.segments.keys(), ...inventory.partials.map((p) => p.timeline)];
  return timelines.length ? Math.max(...timelines) : undefined;
}

/**
 * Backups a restore can start from inside one WAL range: on the newest timeline's history (not
 * a branch that was abandoned), with a complete incremental chain, and their own WAL (start to
 * consistency point) inside the range.
 */
function anchorsOf(
  range: WalRange,
  backups: readonly BackupRecord[],
  chain: readonly ChainLink[],
  complete: ReadonlySet<BackupRecord>,
): BackupRecord[] {
  return backups.filter(
    (b) =>
      complete.has(b) &&
      onChain(chain, b.timeline, parseLsn(b.endLsn)) &&
      parseLsn(b.startLsn) >= range.start &&
      parseLsn(b.endLsn) <= range.end,
  );
}

/**
 * The one model of what is restorable, read by restore, `backup list`, status and `verify`:
 * the WAL along the newest timeline's history, cut at each gap into ranges, and within each
 * range the backups whose WAL it holds. A range without such a backup restores nothing and is
 * left out; a gap after a backup only ends that backup's range, never hides it.
 * `latestCommit` is the newest partial segment's last commit, when the caller read it.
 */
export function restorableWindow(
  backups: readonly BackupRecord[],
  inventory: WalInventory,
  segmentSize: number,
  latestCommit?: Date,
): RestorableWindow {
  const timeline = newestTimeline(inventory);
  if (timeline === undefined) return { gaps: [], ranges: [] };
  const chain = timelineChain(inventory, timeline);
  const wal = walRanges(inventory, timeline, segmentSize);
  const gaps: WalGap[] = [];
  for (let i = 1; i < wal.length; i += 1) {
    const from = wal[i - 1]!.end;
    const gapTimeline = wal[i - 1]!.timeline;
    gaps.push({
      timeline: gapTimeline,
      from: formatLsn(from),
      to: formatLsn(wal[i]!.start),
      firstMissingSegment: segmentName(gapTimeline, from, segmentSize),
    });
  }
  const complete = new Set(completeChains(backups));
  const records = chainSegments(inventory, chain, segmentSize);
  const newestPartial = [...inventory.partials]
    .filter((p) => linkOf(chain, p.timeline))
    .sort((a, b) => (a.startLsn < b.startLsn ? 1 : a.startLsn > b.startLsn ? -1 : 0))[0];
  const state = inventory.streamState;
  const ranges: RestorableRange[] = [];
  wal.forEach((range, index) => {
    const anchors = anchorsOf(range, backups, chain, complete);
    if (anchors.length === 0) return;
    const oldest = anchors.reduce((a, b) => (Date.parse(b.endTime) < Date.parse(a.endTime) ? b : a));
    const inside = (lsn: Lsn) => lsn >= range.start && lsn < range.end;
    const times = [Date.parse(oldest.endTime)];
    for (const record of records) {
      const start = parseLsn(record.startLsn);
      if (record.lastCommitTime && start < range.end && start + BigInt(record.validBytes) > range.start)
        times.push(Date.parse(record.lastCommitTime));
    }
    if (latestCommit && newestPartial && inside(newestPartial.startLsn)) times.push(latestCommit.getTime());
    // At caughtUpAt the server had written nothing past flushedLsn: that moment is reachable
    // from any range holding all WAL up to it.
    const flushed = state ? parseLsn(state.flushedLsn) : undefined;
    if (state && flushed !== undefined && onChain(chain, state.timeline, flushed)) {
      if (flushed > range.start && flushed <= range.end) times.push(Date.parse(state.caughtUpAt));
    }
    const gapAfter = index < gaps.length ? gaps[index] : undefined;
    ranges.push({
      timeline: range.timeline,
      earliest: oldest.endTime,
      earliestLsn: oldest.endLsn,
      latest: new Date(Math.max(...times)).toISOString(),
      latestLsn: formatLsn(range.end),
      backups: anchors.map((b) => b.id),
      ...(gapAfter ? { gapAfter } : {}),
    });
  });
  const newest = ranges.at(-1);
  return {
    ...(newest ? { earliest: newest.earliest, latest: newest.latest } : {}),
    ...(wal.length ? { latestLsn: formatLsn(wal.at(-1)!.end) } : {}),
    timeline,
    gaps,
    ranges,
  };
}

/** The window as text: each range, and the gaps between them. */
export function describeRanges(window: RestorableWindow): string {
  if (window.ranges.length === 0) return 'empty';
  return window.ranges
    .map(
      (r) =>
        // A range of one instant (a backup with no WAL after it) is that instant, written once.
        `${r.earliest === r.latest ? `only ${r.earliest}` : `${r.earliest} .. ${r.latest}`}${r.gapAfter ? ` (then a WAL gap ${r.gapAfter.from}..${r.gapAfter.to})` : ''}`,
    )
    .join(', ');
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
