import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { PartialSegment, SegmentRecord } from '../repository/wal-archive.ts';
import { readHistory, readPartialOrArchived, readSegment } from '../repository/wal-archive.ts';
import type { Repository } from '../repository/repository.ts';
import { formatLsn, parseLsn, type Lsn } from '../wal/lsn.ts';
import { summarizeSegment } from '../wal/segment-summary.ts';
import { historyFileName, parseHistoryFileName, parseTimelineHistory } from '../wal/timeline-history.ts';
import type { RestorePlan } from './restore-planner.ts';

/** What a started restore recovered to. */
export interface RecoveredPoint {
  /** Where recovery ended: the end of the last WAL record replayed, where the new timeline begins. */
  lsn: string;
  /** The timeline the promoted instance runs on. */
  timeline: number;
  /** The last transaction commit replayed (its WAL record's time and start LSN), if any. */
  lastCommitTime?: string;
  lastCommitLsn?: string;
}

/**
 * Reads, without logging in, what a restored and promoted instance recovered to. Promotion
 * writes the new timeline's history file into pg_wal, whose last line is the switchpoint: the
 * exact LSN where replay stopped (PostgreSQL wrote it; its text is not localized). The last
 * commit before that LSN is found in the restore's own WAL, with Warden's segment reader.
 * (pg_last_xact_replay_timestamp() and pg_last_wal_replay_lsn() would say the same, but need a
 * login to the restored instance, which Warden does not have.) Undefined when no such history
 * file is there.
 */
export async function readRecoveredPoint(
  targetDir: string,
  repository: Repository,
  plan: RestorePlan,
): Promise<RecoveredPoint | undefined> {
  const walDir = path.join(targetDir, 'pg_wal');
  const timelines = (await readdir(walDir))
    .map(parseHistoryFileName)
    .filter((tli): tli is number => tli !== undefined && tli > plan.timeline)
    .sort((a, b) => b - a);
  const timeline = timelines[0];
  if (timeline === undefined) return undefined;
  const history = parseTimelineHistory(await readFile(path.join(walDir, historyFileName(timeline)), 'utf8'));
  const switchpoint = history.at(-1);
  if (!switchpoint || switchpoint.timeline !== plan.timeline) return undefined;
  const commit = await lastCommitBefore(repository, plan, switchpoint.switchLsn);
  return { lsn: formatLsn(switchpoint.switchLsn), timeline, ...commit };
}

type Piece =
  | { kind: 'segment'; start: Lsn; record: SegmentRecord }
  | { kind: 'partial'; start: Lsn; partial: PartialSegment };

async function lastCommitBefore(
  repository: Repository,
  plan: RestorePlan,
  end: Lsn,
): Promise<{ lastCommitTime?: string; lastCommitLsn?: string }> {
  const segmentSize = BigInt(repository.meta.walSegmentSize);
  const pieces: Piece[] = [
    ...plan.segments.map((record) => ({
      kind: 'segment' as const,
      start: parseLsn(record.startLsn),
      record,
    })),
    ...plan.partials.map((partial) => ({ kind: 'partial' as const, start: partial.startLsn, partial })),
  ]
    .filter((piece) => piece.start < end)
    .sort((a, b) => Number(b.start - a.start));
  for (const piece of pieces) {
    // Only the segment holding the end must be read (up to the end); those wholly before it
    // have their last commit on record, except a partial, which is read whole.
    if (piece.kind === 'segment' && piece.start + segmentSize <= end) {
      if (piece.record.lastCommitTime)
        return {
          lastCommitTime: piece.record.lastCommitTime,
          ...(piece.record.lastCommitLsn ? { lastCommitLsn: piece.record.lastCommitLsn } : {}),
        };
      continue;
    }
    const timeline = piece.kind === 'segment' ? piece.record.timeline : piece.partial.timeline;
    const raw =
      piece.kind === 'segment'
        ? await readSegment(repository, piece.record)
        : await readPartialOrArchived(repository, piece.partial);
    const limit = piece.start + segmentSize <= end ? segmentSize : end - piece.start;
    const validBytes =
      piece.kind === 'partial' ? Math.min(piece.partial.validBytes, Number(limit)) : Number(limit);
    const summary = summarizeSegment(raw, {
      timeline,
      startLsn: piece.start,
      segmentSize: Number(segmentSize),
      validBytes,
      ...(timeline > 1
        ? { history: parseTimelineHistory((await readHistory(repository, timeline)).toString('utf8')) }
        : {}),
    });
    if (summary.lastCommitTime)
      return {
        lastCommitTime: summary.lastCommitTime.toISOString(),
        ...(summary.lastCommitLsn !== undefined ? { lastCommitLsn: formatLsn(summary.lastCommitLsn) } : {}),
      };
  }
  return {};
}
