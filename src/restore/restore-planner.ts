import { WardenError } from '../errors.ts';
import type { BackupRecord } from '../repository/backup-catalog.ts';
import { backupChain } from '../repository/backup-chain.ts';
import type { PartialSegment, SegmentRecord, WalInventory } from '../repository/wal-archive.ts';
import { formatLsn, parseLsn, segmentStart, type Lsn } from '../wal/lsn.ts';
import {
  newestTimeline,
  restorableWindow,
  walRanges,
  type RestorableRange,
  type RestorableWindow,
  describeRanges,
} from '../repository/restorable-window.ts';
import { chainSegments, timelineChain } from '../repository/timeline-chain.ts';

export type RestoreTarget =
  | { kind: 'time'; time: Date }
  /**
   * Up to this WAL position. `before: true` stops before the first record that starts at or after
   * it (recovery_target_inclusive = off): what a repository durable up to `lsn` holds, which is
   * how a drill pins its restore to the moment of the simulated loss.
   */
  | { kind: 'lsn'; lsn: Lsn; before?: boolean }
  | { kind: 'name'; name: string }
  | { kind: 'latest' }
  /** Only as far as the chosen backup's consistency point. */
  | { kind: 'backup'; id: string };

/** A named restore point found in the archive (pg_create_restore_point); `lsn` is its record's start. */
export interface RestorePointInfo {
  name: string;
  lsn: Lsn;
  time: Date;
}

export interface RestorePlan {
  backup: BackupRecord;
  /** What restore reads, oldest first: `[backup]` for a full one, else its full backup and every incremental up to it. */
  chain: BackupRecord[];
  timeline: number;
  segments: SegmentRecord[];
  /** The first of `partials` (kept for callers that show one). */
  partial?: PartialSegment;
  /**
   * Segments still being received, in LSN order: usually one, but two while a completed segment
   * is being archived in the background (its full partial file and the next one).
   */
  partials: PartialSegment[];
  /** Settings for postgresql.auto.conf that stop recovery at the target. */
  recovery: Record<string, string>;
  window: RestorableWindow;
  target: RestoreTarget;
}

/**
 * Picks the newest backup that precedes the target and the exact run of WAL segments from that
 * backup's start to the target, refusing targets outside the restorable window and gaps.
 * `partialLastCommit` and `partialRestorePoints` come from summarizing the newest partial segment.
 */
export function planRestore(
  target: RestoreTarget,
  backups: readonly BackupRecord[],
  inventory: WalInventory,
  segmentSize: number,
  partialLastCommit?: Date,
  partialRestorePoints: readonly RestorePointInfo[] = [],
): RestorePlan {
  if (backups.length === 0) {
    throw new WardenError('WARDEN_E_NO_BACKUP', 'the repository holds no committed backup', {
      hint: 'Take one with `warden backup`.',
    });
  }
  const window = restorableWindow(backups, inventory, segmentSize, partialLastCommit);
  const timeline = newestTimeline(inventory);
  if (timeline === undefined || walRanges(inventory, timeline, segmentSize).length === 0) {
    throw new WardenError(
      'WARDEN_E_WAL_GAP',
      'the repository holds no WAL; no backup can be made consistent',
      {
        hint: 'Run `warden wal stream` (or take a new backup, which archives its WAL).',
      },
    );
  }
  const byId = new Map(backups.map((b) => [b.id, b]));
  const anchors = (range: RestorableRange) => range.backups.map((id) => byId.get(id)!);
  const named =
    target.kind === 'name'
      ? chooseForRestorePoint(
          target.name,
          anchors,
          archivedRestorePoints(inventory, timeline, segmentSize, partialRestorePoints),
          window,
        )
      : undefined;
  const chosen = named ?? chooseBackup(target, backups, anchors, window);
  const { backup, range } = chosen;
  // WAL stops where the chosen range ends: what lies beyond its gap cannot be replayed.
  const rangeEnd = parseLsn(range.latestLsn);
  const recovery: Record<string, string> = {};
  let stopLsn: Lsn = rangeEnd;
  if (target.kind === 'time') {
    const needed = segmentsThrough(inventory, timeline, backup, segmentSize, rangeEnd);
    const commitAfter = needed.find(
      (s) => s.lastCommitTime && Date.parse(s.lastCommitTime) > target.time.getTime(),
    );
    const newestPartial = [...inventory.partials].sort((a, b) => Number(b.startLsn - a.startLsn))[0];
    const partialInRange =
      newestPartial !== undefined &&
      newestPartial.startLsn >= parseLsn(backup.startLsn) &&
      newestPartial.startLsn < rangeEnd;
    // With no commit after the target in the range's WAL, replaying all of it gives the same
    // data, and PostgreSQL would otherwise stop with "recovery ended before target was reached".
    if (commitAfter || (partialInRange && partialLastCommit && partialLastCommit > target.time)) {
      recovery.recovery_target_time = target.time.toISOString().replace('T', ' ').replace('Z', '+00');
      if (commitAfter) stopLsn = parseLsn(commitAfter.startLsn) + BigInt(segmentSize);
    }
  } else if (target.kind === 'lsn' && target.before && target.lsn >= rangeEnd) {
    // Nothing was archived past the position: replaying all of it stops there, and PostgreSQL
    // would otherwise stop with "recovery ended before target was reached".
  } else if (target.kind === 'lsn') {
    recovery.recovery_target_lsn = formatLsn(target.lsn);
    if (target.before) recovery.recovery_target_inclusive = 'off';
    // With `before`, a record may straddle the position: its end lies in the next segment.
    stopLsn = target.lsn + (target.before ? BigInt(segmentSize) : 1n);
  } else if (target.kind === 'name') {
    recovery.recovery_target_name = target.name;
    // Through the segment holding the restore point's record (which lies wholly inside it).
    stopLsn = named!.point.lsn + 1n;
  } else if (target.kind === 'backup') {
    recovery.recovery_target = 'immediate';
    stopLsn = parseLsn(backup.endLsn) + 1n;
  }
  if (stopLsn > rangeEnd) stopLsn = rangeEnd;
  if (Object.keys(recovery).length > 0) recovery.recovery_target_action = 'promote';
  const segments = segmentsThrough(inventory, timeline, backup, segmentSize, stopLsn);
  const lastSegmentEnd = segments.length
    ? parseLsn(segments.at(-1)!.startLsn) + BigInt(segments.at(-1)!.timeline === timeline ? segmentSize : 0)
    : 0n;
  const partials = inventory.partials
    .filter(
      (p) =>
        p.timeline === timeline &&
        p.startLsn >= lastSegmentEnd &&
        (stopLsn === undefined || p.startLsn < stopLsn),
    )
    .sort((a, b) => (a.startLsn < b.startLsn ? -1 : a.startLsn > b.startLsn ? 1 : 0));
  const partial = partials[0];
  return {
    backup,
    chain: backupChain(backup, backups),
    timeline,
    segments,
    ...(partial ? { partial } : {}),
    partials,
    recovery,
    window,
    target,
  };
}

interface Choice {
  backup: BackupRecord;
  range: RestorableRange;
}

function chooseBackup(
  target: RestoreTarget,
  all: readonly BackupRecord[],
  anchors: (range: RestorableRange) => BackupRecord[],
  window: RestorableWindow,
): Choice {
  if (target.kind === 'backup') {
    const found = all.find((b) => b.id === target.id || b.name === target.id);
    if (!found)
      throw new WardenError('WARDEN_E_BACKUP_NOT_FOUND', `no backup "${target.id}"`, {
        details: { id: target.id },
      });
    backupChain(found, all); // a missing parent is named before any WAL question
    const range = window.ranges.find((r) => r.backups.includes(found.id));
    if (!range) throw gapError(found, window);
    return { backup: found, range };
  }
  if (target.kind === 'time') {
    const ms = target.time.getTime();
    const what = target.time.toISOString();
    const range = placeTarget(
      window,
      what,
      (r) => ms >= Date.parse(r.earliest) && ms <= Date.parse(r.latest),
      (r) => ms > Date.parse(r.latest),
    );
    const candidates = anchors(range).filter((b) => Date.parse(b.endTime) <= ms);
    if (candidates.length) return { backup: candidates.at(-1)!, range };
    throw outsideWindow(what, window);
  }
  if (target.kind === 'lsn') {
    const what = `LSN ${formatLsn(target.lsn)}`;
    const range = placeTarget(
      window,
      what,
      (r) => target.lsn >= parseLsn(r.earliestLsn) && target.lsn <= parseLsn(r.latestLsn),
      (r) => target.lsn > parseLsn(r.latestLsn),
    );
    const candidates = anchors(range).filter((b) => parseLsn(b.endLsn) <= target.lsn);
    if (candidates.length) return { backup: candidates.at(-1)!, range };
    throw outsideWindow(what, window);
  }
  const range = window.ranges.at(-1);
  if (!range) throw gapError(all.at(-1)!, window);
  return { backup: anchors(range).at(-1)!, range };
}

/**
 * The range a target lies in. A target between two ranges lies in a WAL gap and is refused
 * naming it (`WARDEN_E_WAL_GAP`); one before the first or after the last range is outside the
 * window.
 */
function placeTarget(
  window: RestorableWindow,
  what: string,
  contains: (range: RestorableRange) => boolean,
  isAfter: (range: RestorableRange) => boolean,
): RestorableRange {
  const range = window.ranges.find(contains);
  if (range) return range;
  const before = window.ranges.filter(isAfter).at(-1);
  const next = before ? window.ranges[window.ranges.indexOf(before) + 1] : undefined;
  if (before && next) throw inGap(what, before, next, window);
  throw outsideWindow(what, window);
}

/** Restore points in the timeline's archived segments and the partial, in LSN order, without duplicates. */
function archivedRestorePoints(
  inventory: WalInventory,
  timeline: number,
  segmentSize: number,
  partialRestorePoints: readonly RestorePointInfo[],
): RestorePointInfo[] {
  const byLsn = new Map<Lsn, RestorePointInfo>();
  for (const record of chainSegments(inventory, timelineChain(inventory, timeline), segmentSize)) {
    for (const rp of record.restorePoints ?? []) {
      byLsn.set(parseLsn(rp.lsn), { name: rp.name, lsn: parseLsn(rp.lsn), time: new Date(rp.time) });
    }
  }
  for (const rp of partialRestorePoints) if (!byLsn.has(rp.lsn)) byLsn.set(rp.lsn, rp);
  return [...byLsn.values()].sort((a, b) => (a.lsn < b.lsn ? -1 : a.lsn > b.lsn ? 1 : 0));
}

/**
 * The restore point a recovery to `name` will stop at, and the newest backup to start it from.
 * Names may repeat; PostgreSQL stops at the first one it replays after the backup's start. So the
 * newest occurrence wins when some backup became consistent before it with no other occurrence
 * in between; otherwise the next older one is tried.
 */
function chooseForRestorePoint(
  name: string,
  anchors: (range: RestorableRange) => BackupRecord[],
  points: readonly RestorePointInfo[],
  window: RestorableWindow,
): Choice & { point: RestorePointInfo } {
  const matches = points.filter((rp) => rp.name === name);
  if (matches.length === 0) {
    const knownNames = [...new Set(points.map((rp) => rp.name))];
    const known = points.map((rp) => `"${rp.name}" (${rp.time.toISOString()})`).join(', ');
    throw new WardenError(
      'WARDEN_E_RESTORE_POINT_NOT_FOUND',
      `no restore point named "${name}" in the archived WAL; ${points.length ? `known: ${known}` : 'the archived WAL holds no restore point at all'}`,
      {
        hint: "Restore points are created with SELECT pg_create_restore_point('NAME'); check the name, or wait until the WAL holding it is archived.",
        details: { name, knownNames },
      },
    );
  }
  for (const point of [...matches].reverse()) {
    const range = window.ranges.find(
      (r) => point.lsn >= parseLsn(r.earliestLsn) && point.lsn < parseLsn(r.latestLsn),
    );
    if (!range) continue;
    const candidates = anchors(range).filter(
      (b) =>
        parseLsn(b.endLsn) <= point.lsn &&
        !matches.some((other) => other.lsn >= parseLsn(b.startLsn) && other.lsn < point.lsn),
    );
    if (candidates.length) return { backup: candidates.at(-1)!, range, point };
  }
  const newest = matches.at(-1)!;
  throw outsideWindow(`restore point "${name}" (LSN ${formatLsn(newest.lsn)})`, window);
}

/** Archived segments of the timeline from the backup's start segment up to (excluding) `stopLsn`'s successor. */
function segmentsThrough(
  inventory: WalInventory,
  timeline: number,
  backup: BackupRecord,
  segmentSize: number,
  stopLsn: Lsn | undefined,
): SegmentRecord[] {
  const first = segmentStart(parseLsn(backup.startLsn), segmentSize);
  return chainSegments(inventory, timelineChain(inventory, timeline), segmentSize).filter((record) => {
    const start = parseLsn(record.startLsn);
    return start >= first && (stopLsn === undefined || start < stopLsn);
  });
}

function outsideWindow(what: string, window: RestorableWindow): WardenError {
  return new WardenError(
    'WARDEN_E_TARGET_OUTSIDE_WINDOW',
    `${what} is outside the restorable window (${describeRanges(window)})`,
    {
      hint: 'Pick a target inside the window; `warden backup list` shows it.',
      details: { window },
    },
  );
}

/** A target between two ranges: the WAL from the end of one to the next is (partly) missing. */
function inGap(
  what: string,
  before: RestorableRange,
  next: RestorableRange,
  window: RestorableWindow,
): WardenError {
  const gap = before.gapAfter!;
  return new WardenError(
    'WARDEN_E_WAL_GAP',
    `${what} lies in a WAL gap: WAL ${gap.from}..${gap.to} on timeline ${gap.timeline} is missing (first missing segment ${gap.firstMissingSegment}); restorable up to ${before.latest} (LSN ${before.latestLsn}) and again from ${next.earliest} (LSN ${next.earliestLsn})`,
    {
      hint: `Pick a target up to ${before.latest} or from ${next.earliest}; \`warden backup list\` shows the ranges.`,
      details: { gap, before, next, window },
    },
  );
}

function gapError(backup: BackupRecord, window: RestorableWindow): WardenError {
  const start = parseLsn(backup.startLsn);
  // The hole that cuts this backup off: the first gap that ends after its start.
  const gap = window.gaps.find((g) => parseLsn(g.to) > start) ?? window.gaps[0];
  return new WardenError(
    'WARDEN_E_WAL_GAP',
    `WAL needed by backup ${backup.id} is missing${gap ? `: WAL ${gap.from}..${gap.to} on timeline ${gap.timeline} (first missing segment ${gap.firstMissingSegment})` : ''}; restorable: ${describeRanges(window)}`,
    {
      hint: 'Restore from another backup (`warden backup list` shows which ones each restorable range starts from), or take a new backup.',
      details: { backup: backup.id, gaps: window.gaps, window },
    },
  );
}
