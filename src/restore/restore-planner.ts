import { WardenError } from '../errors.ts';
import type { BackupRecord } from '../repository/backup-catalog.ts';
import type { PartialSegment, SegmentRecord, WalInventory } from '../repository/wal-archive.ts';
import { formatLsn, parseLsn, segmentStart, type Lsn } from '../wal/lsn.ts';
import { newestTimeline, restorableWindow, walRanges, type RestorableWindow } from './restorable-window.ts';

export type RestoreTarget =
  | { kind: 'time'; time: Date }
  | { kind: 'lsn'; lsn: Lsn }
  | { kind: 'name'; name: string }
  | { kind: 'latest' }
  /** Only as far as the chosen backup's consistency point. */
  | { kind: 'backup'; id: string };

export interface RestorePlan {
  backup: BackupRecord;
  timeline: number;
  segments: SegmentRecord[];
  partial?: PartialSegment;
  /** Settings for postgresql.auto.conf that stop recovery at the target. */
  recovery: Record<string, string>;
  window: RestorableWindow;
  target: RestoreTarget;
}

/**
 * Picks the newest backup that precedes the target and the exact run of WAL segments from that
 * backup's start to the target, refusing targets outside the restorable window and gaps.
 */
export function planRestore(
  target: RestoreTarget,
  backups: readonly BackupRecord[],
  inventory: WalInventory,
  segmentSize: number,
  partialLastCommit?: Date,
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
  const usable = backups.filter(
    (b) => parseLsn(b.startLsn) >= range.start && parseLsn(b.endLsn) <= range.end,
  );
  const backup = chooseBackup(target, backups, usable, window);
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
  } else if (target.kind === 'backup') {
    recovery.recovery_target = 'immediate';
    stopLsn = parseLsn(backup.endLsn) + 1n;
  }
  if (Object.keys(recovery).length > 0) recovery.recovery_target_action = 'promote';
  const segments = segmentsThrough(inventory, timeline, backup, segmentSize, stopLsn);
  const lastSegmentEnd = segments.length ? parseLsn(segments.at(-1)!.startLsn) + BigInt(segmentSize) : 0n;
  const partial = inventory.partials.find(
    (p) =>
      p.timeline === timeline &&
      p.startLsn >= lastSegmentEnd &&
      (stopLsn === undefined || p.startLsn < stopLsn),
  );
  return { backup, timeline, segments, ...(partial ? { partial } : {}), recovery, window, target };
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

/** Archived segments of the timeline from the backup's start segment up to (excluding) `stopLsn`'s successor. */
function segmentsThrough(
  inventory: WalInventory,
  timeline: number,
  backup: BackupRecord,
  segmentSize: number,
  stopLsn: Lsn | undefined,
): SegmentRecord[] {
  const first = segmentStart(parseLsn(backup.startLsn), segmentSize);
  return (inventory.segments.get(timeline) ?? []).filter((record) => {
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
