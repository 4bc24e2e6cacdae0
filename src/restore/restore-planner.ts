import { WardenError } from '../errors.ts';
import type { BackupRecord } from '../repository/backup-catalog.ts';
import { backupChain, completeChains } from '../repository/backup-chain.ts';
import type { PartialSegment, SegmentRecord, WalInventory } from '../repository/wal-archive.ts';
import { formatLsn, parseLsn, segmentStart, type Lsn } from '../wal/lsn.ts';
import { newestTimeline, restorableWindow, walRanges, type RestorableWindow } from './restorable-window.ts';
import { chainSegments, onChain, timelineChain } from './timeline-chain.ts';

export type RestoreTarget =
  | { kind: 'time'; time: Date }
  | { kind: 'lsn'; lsn: Lsn }
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
  const range = timeline === undefined ? undefined : walRanges(inventory, timeline, segmentSize).at(-1);
  if (timeline === undefined || !range) {
    throw new WardenError(
      'WARDEN_E_WAL_GAP',
      'the repository holds no WAL; no backup can be made consistent',
      {
        hint: 'Run `warden wal stream` (or take a new backup, which archives its WAL).',
      },
    );
  }
  const chain = timelineChain(inventory, timeline);
  // A backup is usable when it lies on this history (not on a branch that was abandoned) and
  // the WAL from its start through the archive's end is continuous.
  const complete = new Set(completeChains(backups));
  const usable = backups.filter(
    (b) =>
      complete.has(b) &&
      onChain(chain, b.timeline, parseLsn(b.endLsn)) &&
      parseLsn(b.startLsn) >= range.start &&
      parseLsn(b.endLsn) <= range.end,
  );
  const named =
    target.kind === 'name'
      ? chooseForRestorePoint(
          target.name,
          usable,
          archivedRestorePoints(inventory, timeline, segmentSize, partialRestorePoints),
          range,
          window,
        )
      : undefined;
  const backup = named?.backup ?? chooseBackup(target, backups, usable, window);
  const recovery: Record<string, string> = {};
  let stopLsn: Lsn | undefined = range.end;
  if (target.kind === 'time') {
    const needed = segmentsThrough(inventory, timeline, backup, segmentSize, undefined);
    const commitAfter = needed.find(
      (s) => s.lastCommitTime && Date.parse(s.lastCommitTime) > target.time.getTime(),
    );
    // With no commit after the target in the archive, replaying everything gives the same data,
    // and PostgreSQL would otherwise stop with "recovery ended before target was reached".
    if (commitAfter || (partialLastCommit && partialLastCommit > target.time)) {
      recovery.recovery_target_time = target.time.toISOString().replace('T', ' ').replace('Z', '+00');
      if (commitAfter) stopLsn = parseLsn(commitAfter.startLsn) + BigInt(segmentSize);
    }
  } else if (target.kind === 'lsn') {
    if (target.lsn > range.end) throw outsideWindow(`LSN ${formatLsn(target.lsn)}`, window);
    recovery.recovery_target_lsn = formatLsn(target.lsn);
    stopLsn = target.lsn + 1n;
  } else if (target.kind === 'name') {
    recovery.recovery_target_name = target.name;
    // Through the segment holding the restore point's record (which lies wholly inside it).
    stopLsn = named!.point.lsn + 1n;
  } else if (target.kind === 'backup') {
    recovery.recovery_target = 'immediate';
    stopLsn = parseLsn(backup.endLsn) + 1n;
  }
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

function chooseBackup(
  target: RestoreTarget,
  all: readonly BackupRecord[],
  usable: readonly BackupRecord[],
  window: RestorableWindow,
): BackupRecord {
  if (target.kind === 'backup') {
    const found = all.find((b) => b.id === target.id || b.name === target.id);
    if (!found)
      throw new WardenError('WARDEN_E_BACKUP_NOT_FOUND', `no backup "${target.id}"`, {
        details: { id: target.id },
      });
    backupChain(found, all); // a missing parent is named before any WAL question
    if (!usable.includes(found)) throw gapError(found, window);
    return found;
  }
  if (target.kind === 'time') {
    const ms = target.time.getTime();
    if (
      !window.earliest ||
      !window.latest ||
      ms < Date.parse(window.earliest) ||
      ms > Date.parse(window.latest)
    ) {
      throw outsideWindow(target.time.toISOString(), window);
    }
    const candidates = usable.filter((b) => Date.parse(b.endTime) <= ms);
    if (candidates.length) return candidates.at(-1)!;
    throw outsideWindow(target.time.toISOString(), window);
  }
  if (target.kind === 'lsn') {
    const candidates = usable.filter((b) => parseLsn(b.endLsn) <= target.lsn);
    if (candidates.length) return candidates.at(-1)!;
    throw outsideWindow(`LSN ${formatLsn(target.lsn)}`, window);
  }
  const newest = usable.at(-1);
  if (!newest) throw gapError(all.at(-1)!, window);
  return newest;
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
  usable: readonly BackupRecord[],
  points: readonly RestorePointInfo[],
  range: { start: Lsn; end: Lsn },
  window: RestorableWindow,
): { backup: BackupRecord; point: RestorePointInfo } {
  const matches = points.filter((rp) => rp.name === name);
  if (matches.length === 0) {
    const knownNames = [...new Set(points.map((rp) => rp.name))];
    throw new WardenError(
      'WARDEN_E_RESTORE_POINT_NOT_FOUND',
      `no restore point named "${name}" in the archived WAL${knownNames.length ? ` (known: ${knownNames.map((n) => `"${n}"`).join(', ')})` : ''}`,
      {
        hint: 'Restore points are created with pg_create_restore_point(); check the name, or wait until the WAL holding it is archived.',
        details: { name, knownNames },
      },
    );
  }
  for (const point of [...matches].reverse()) {
    if (point.lsn < range.start || point.lsn >= range.end) continue;
    const candidates = usable.filter(
      (b) =>
        parseLsn(b.endLsn) <= point.lsn &&
        !matches.some((other) => other.lsn >= parseLsn(b.startLsn) && other.lsn < point.lsn),
    );
    if (candidates.length) return { backup: candidates.at(-1)!, point };
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
  const shown = window.earliest && window.latest ? `${window.earliest} .. ${window.latest}` : 'empty';
  return new WardenError(
    'WARDEN_E_TARGET_OUTSIDE_WINDOW',
    `${what} is outside the restorable window (${shown})`,
    {
      hint: 'Pick a target inside the window; `warden backup list` shows it.',
      details: { window },
    },
  );
}

function gapError(backup: BackupRecord, window: RestorableWindow): WardenError {
  const gap = window.gaps[0];
  return new WardenError(
    'WARDEN_E_WAL_GAP',
    `WAL needed after backup ${backup.id} is missing${gap ? `: PITR impossible between ${gap.from} and ${gap.to} (first missing segment ${gap.firstMissingSegment})` : ''}`,
    { details: { backup: backup.id, gaps: window.gaps } },
  );
}
