import type { BackupRecord } from '../repository/backup-catalog.ts';
import {
  historyKey,
  segmentDataKey,
  type SegmentRecord,
  type StreamState,
  type WalInventory,
} from '../repository/wal-archive.ts';
import { walRanges } from '../repository/restorable-window.ts';
import { formatLsn, parseLsn, segmentName, segmentNumber, type Lsn } from '../wal/lsn.ts';
import type { TimelineHistoryEntry } from '../wal/timeline-history.ts';
import type { VerifyProblem } from './verify-report.ts';

export interface ContinuityInput {
  backups: readonly BackupRecord[];
  /** Segments whose record and data verified, plus the partial segments. */
  good: WalInventory;
  /** Every readable segment record, verified or not: they say how far the archive reaches. */
  recorded: ReadonlyMap<number, readonly SegmentRecord[]>;
  /** Readable history files by timeline; `historyKeys` lists those present at all. */
  histories: ReadonlyMap<number, TimelineHistoryEntry[]>;
  historyPresent: ReadonlySet<number>;
  streamState?: StreamState;
  segmentSize: number;
}

export interface ContinuityResult {
  /**
   * How far each backup's WAL runs from its start without a hole. Whether a backup restores,
   * and to where, is the restorable window's answer (repository/restorable-window.ts), not this.
   */
  continuousTo: Map<string, string>;
  problems: VerifyProblem[];
  walEnd?: { timeline: number; lsn: string };
  /** For each segment (by data key) inside a hole: what the hole breaks. */
  breaksBySegment: Map<string, string>;
}

interface Span {
  timeline: number;
  from: Lsn;
  to: Lsn;
}

const max = (a: Lsn, b: Lsn): Lsn => (a > b ? a : b);
const min = (a: Lsn, b: Lsn): Lsn => (a < b ? a : b);

/**
 * WAL continuity from each backup's start to the end of the archive on the newest timeline,
 * following timeline switches through the newest timeline's history file. A hole inside a
 * backup's own start..end makes it unrestorable; a hole after it makes PITR impossible
 * between the last commit before and the first commit after it.
 */
export function checkWalContinuity(input: ContinuityInput): ContinuityResult {
  const result: ContinuityResult = { continuousTo: new Map(), problems: [], breaksBySegment: new Map() };
  const newest = newestTimeline(input);
  if (newest === undefined) {
    for (const backup of input.backups) {
      result.problems.push(
        holeProblem(
          input,
          { timeline: backup.timeline, from: parseLsn(backup.startLsn), to: parseLsn(backup.endLsn) },
          [backup.id],
          true,
          result,
        ),
      );
    }
    return result;
  }
  const ends = new Map<number, Lsn>();
  const endOf = (timeline: number): Lsn => {
    let end = ends.get(timeline);
    if (end !== undefined) return end;
    end = 0n;
    for (const record of input.recorded.get(timeline) ?? [])
      end = max(end, parseLsn(record.startLsn) + BigInt(record.validBytes));
    for (const range of walRanges(input.good, timeline, input.segmentSize)) end = max(end, range.end);
    const state = input.streamState;
    // The receiver recorded everything before flushedLsn as durable: missing WAL below it is a hole.
    if (state && state.timeline === timeline) end = max(end, parseLsn(state.flushedLsn));
    ends.set(timeline, end);
    return end;
  };
  result.walEnd = { timeline: newest, lsn: formatLsn(endOf(newest)) };
  const newestHistory = input.histories.get(newest);
  const pitrHoles = new Map<string, { span: Span; backups: string[] }>();
  for (const backup of input.backups) {
    const start = parseLsn(backup.startLsn);
    const end = parseLsn(backup.endLsn);
    const spans: Span[] = [];
    if (backup.timeline === newest) {
      spans.push({ timeline: newest, from: start, to: max(end, endOf(newest)) });
    } else if (newestHistory?.some((entry) => entry.timeline === backup.timeline)) {
      let from = start;
      for (const entry of newestHistory.filter((e) => e.timeline >= backup.timeline)) {
        spans.push({
          timeline: entry.timeline,
          from,
          to: max(entry.switchLsn, entry.timeline === backup.timeline ? end : 0n),
        });
        from = entry.switchLsn;
      }
      spans.push({ timeline: newest, from, to: max(from, endOf(newest)) });
    } else {
      // Not on the newest timeline's history (or the history file is unreadable): only the
      // backup's own timeline can be checked.
      spans.push({ timeline: backup.timeline, from: start, to: max(end, endOf(backup.timeline)) });
      if (!input.historyPresent.has(newest)) {
        result.problems.push({
          kind: 'missing',
          object: historyKey(newest),
          message: `timeline history file of timeline ${newest} is missing`,
          breaks: `backup ${backup.id} (timeline ${backup.timeline}) cannot be restored onto timeline ${newest}`,
          backups: [backup.id],
        });
      }
    }
    let continuousTo: Lsn | undefined;
    for (const span of spans) {
      for (const hole of holes(input, span)) {
        continuousTo ??= hole.from;
        const inBackup = hole.timeline === backup.timeline && hole.from < end && hole.to > start;
        if (inBackup) {
          result.problems.push(holeProblem(input, hole, [backup.id], true, result));
        } else {
          const key = `${hole.timeline}:${hole.from}:${hole.to}`;
          const known = pitrHoles.get(key) ?? { span: hole, backups: [] };
          known.backups.push(backup.id);
          pitrHoles.set(key, known);
        }
      }
    }
    const last = spans.at(-1)!;
    result.continuousTo.set(backup.id, formatLsn(continuousTo ?? last.to));
  }
  for (const { span, backups } of pitrHoles.values())
    result.problems.push(holeProblem(input, span, backups, false, result));
  return result;
}

function newestTimeline(input: ContinuityInput): number | undefined {
  const timelines = [
    ...input.recorded.keys(),
    ...input.good.segments.keys(),
    ...input.good.partials.map((p) => p.timeline),
    ...input.historyPresent,
  ];
  return timelines.length ? Math.max(...timelines) : undefined;
}

/** Parts of `span` not covered by verified WAL. */
function holes(input: ContinuityInput, span: Span): Span[] {
  if (span.from >= span.to) return [];
  const found: Span[] = [];
  let at = span.from;
  for (const range of walRanges(input.good, span.timeline, input.segmentSize)) {
    if (range.end <= at) continue;
    if (range.start >= span.to) break;
    if (range.start > at) found.push({ timeline: span.timeline, from: at, to: min(range.start, span.to) });
    at = max(at, range.end);
    if (at >= span.to) break;
  }
  if (at < span.to) found.push({ timeline: span.timeline, from: at, to: span.to });
  return found;
}

function holeProblem(
  input: ContinuityInput,
  hole: Span,
  backups: string[],
  unrestorable: boolean,
  result: ContinuityResult,
): VerifyProblem {
  const segments: string[] = [];
  const last = segmentNumber(hole.to - 1n, input.segmentSize);
  for (let n = segmentNumber(hole.from, input.segmentSize); n <= last && segments.length < 10_000; n += 1n)
    segments.push(segmentName(hole.timeline, n * BigInt(input.segmentSize), input.segmentSize));
  const before = pointBefore(input, hole.timeline, hole.from);
  const after = pointAfter(input, hole.timeline, hole.to);
  const breaks = unrestorable
    ? `backup ${backups.join(', ')} unrestorable: WAL between its start and consistency point is missing`
    : `PITR impossible between ${before} and ${after} (backups ${backups.join(', ')} restore only to before it)`;
  for (const segment of segments) {
    const key = segmentDataKey(hole.timeline, segment);
    if (!result.breaksBySegment.has(key)) result.breaksBySegment.set(key, breaks);
  }
  const shown =
    segments.length > 5 ? `${segments.slice(0, 5).join(', ')}, … (${segments.length})` : segments.join(', ');
  return {
    kind: 'wal-gap',
    object: segmentDataKey(hole.timeline, segments[0]!),
    message: `WAL ${formatLsn(hole.from)}..${formatLsn(hole.to)} on timeline ${hole.timeline} is missing or damaged: ${shown}`,
    breaks,
    backups,
    details: {
      timeline: hole.timeline,
      from: formatLsn(hole.from),
      to: formatLsn(hole.to),
      segments,
    },
  };
}

/** "time (LSN)" of the last commit verified WAL has before `lsn`, or just the LSN. */
function pointBefore(input: ContinuityInput, timeline: number, lsn: Lsn): string {
  const times = (input.good.segments.get(timeline) ?? [])
    .filter((r) => parseLsn(r.startLsn) < lsn && r.lastCommitTime)
    .map((r) => r.lastCommitTime!);
  const time = times.sort().at(-1);
  return time ? `${time} (LSN ${formatLsn(lsn)})` : `LSN ${formatLsn(lsn)}`;
}

function pointAfter(input: ContinuityInput, timeline: number, lsn: Lsn): string {
  const times = (input.good.segments.get(timeline) ?? [])
    .filter((r) => parseLsn(r.startLsn) >= lsn && r.firstCommitTime)
    .map((r) => r.firstCommitTime!);
  const time = times.sort()[0];
  return time ? `${time} (LSN ${formatLsn(lsn)})` : `LSN ${formatLsn(lsn)}`;
}
