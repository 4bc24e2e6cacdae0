import type { BackupRecord } from '../repository/backup-catalog.ts';
import { completeChains } from '../repository/backup-chain.ts';
import { segmentDataKey, timelineDir, type WalInventory } from '../repository/wal-archive.ts';
import { newestTimeline, walRanges } from '../restore/restorable-window.ts';
import { parseLsn, segmentStart, type Lsn } from '../wal/lsn.ts';
import type { TimelineHistoryEntry } from '../wal/timeline-history.ts';
import { formatRetentionDuration, type RetentionPolicy } from './retention-policy.ts';
import { gfsReasons } from './gfs.ts';

export type KeepRule =
  | 'named'
  | 'newest-valid'
  | 'no-valid-backup'
  | 'gfs-daily'
  | 'gfs-weekly'
  | 'gfs-monthly'
  | 'max-age-full'
  | 'max-age-incremental'
  | 'keep-last'
  | 'recovery-window'
  | 'needed-by-incremental';

/** The rule under which a backup goes: the first configured rule that no longer holds it. */
export type ExpireRule =
  | 'not-restorable'
  | 'max-age-full'
  | 'max-age-incremental'
  | 'gfs'
  | 'keep-last'
  | 'recovery-window'
  | 'no-rule';

export interface KeepReason {
  rule: KeepRule;
  detail: string;
}

export interface KeptBackup {
  id: string;
  name?: string;
  endTime: string;
  /** Its WAL from start to end LSN is in the archive: it can be restored. */
  valid: boolean;
  reasons: KeepReason[];
}

export interface ExpiredBackup {
  id: string;
  endTime: string;
  valid: boolean;
  rule: ExpireRule;
  /** Why each configured rule lets it go. */
  reasons: string[];
}

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

export interface ExpiryPlan {
  now: string;
  keep: KeptBackup[];
  expire: ExpiredBackup[];
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
  /** Things a person should know (no valid backup, so nothing expires). */
  warnings: string[];
}

export interface PlanExpiryOptions {
  segmentSize: number;
  /**
   * Parsed timeline history files by timeline. A timeline without one (other than 1) is treated
   * as descending from every lower timeline: unsure ancestry keeps more WAL, never less.
   */
  histories?: ReadonlyMap<number, readonly TimelineHistoryEntry[]>;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Decides which backups and WAL segments a retention policy lets go. Pure: same input, same plan.
 *
 * A backup stays when any rule wants it; named backups and the newest valid (restorable) backup
 * always stay; with no valid backup at all nothing expires. A WAL segment stays when a kept
 * backup can replay through it: it lies at or after that backup's start segment on the backup's
 * timeline or on a timeline that branched off it after the backup's start. So WAL runs without a
 * new gap from every kept backup to the end of the archive. History files and partial segments
 * always stay.
 *
 * @example
 * const plan = planExpiry(backups, inventory, { keepLast: 3 }, new Date(), { segmentSize: 16 << 20 });
 * plan.expire.map((b) => `${b.id}: ${b.rule}`);
 */
export function planExpiry(
  backups: readonly BackupRecord[],
  walInventory: WalInventory,
  policy: RetentionPolicy,
  now: Date,
  options: PlanExpiryOptions,
): ExpiryPlan {
  const sorted = [...backups].sort((a, b) => time(a) - time(b) || a.id.localeCompare(b.id));
  // An incremental backup is restorable only with its whole chain of parents present.
  const complete = new Set(completeChains(sorted));
  const valid = new Set(
    sorted.filter((b) => complete.has(b) && isRestorable(b, walInventory, options.segmentSize)),
  );
  const reasons = new Map<BackupRecord, KeepReason[]>(sorted.map((b) => [b, []]));
  const add = (backup: BackupRecord, reason: KeepReason) => reasons.get(backup)!.push(reason);
  const warnings: string[] = [];

  // The newest backup that can restore the cluster's current timeline; another timeline's only as
  // a fallback (a backup on an abandoned branch must not shield the current one's backups).
  const current = newestTimeline(walInventory);
  const onCurrent = (b: BackupRecord) =>
    current !== undefined && onBranchOf(current, b.timeline, parseLsn(b.startLsn), options.histories);
  const newestValid =
    sorted.filter((b) => valid.has(b) && onCurrent(b)).at(-1) ?? sorted.filter((b) => valid.has(b)).at(-1);
  if (!newestValid) {
    if (sorted.length)
      warnings.push('no backup is restorable (WAL from start to end missing): nothing expires');
    for (const backup of sorted)
      add(backup, { rule: 'no-valid-backup', detail: 'no restorable backup exists; nothing expires' });
  } else {
    add(newestValid, { rule: 'newest-valid', detail: 'newest restorable backup' });
    const usable = windowUsable(sorted, walInventory, options, current, onCurrent);
    applyPolicy(sorted, valid, usable, policy, now, add);
  }
  for (const backup of sorted) {
    if (backup.name) add(backup, { rule: 'named', detail: `named "${backup.name}": kept until deleted` });
  }
  keepParentsOfKept(sorted, complete, reasons, add);

  const kept = sorted.filter((b) => reasons.get(b)!.length > 0);
  const expired = sorted.filter((b) => reasons.get(b)!.length === 0);
  const wal = planWal(kept, walInventory, options, newestValid === undefined);
  return {
    now: now.toISOString(),
    keep: kept.map((b) => ({
      id: b.id,
      ...(b.name ? { name: b.name } : {}),
      endTime: b.endTime,
      valid: valid.has(b),
      reasons: reasons.get(b)!,
    })),
    expire: expired.map((b) => explainExpiry(b, valid.has(b), policy, now)),
    ...wal,
    warnings,
  };
}

function applyPolicy(
  sorted: readonly BackupRecord[],
  valid: ReadonlySet<BackupRecord>,
  usable: ReadonlySet<BackupRecord>,
  policy: RetentionPolicy,
  now: Date,
  add: (backup: BackupRecord, reason: KeepReason) => void,
): void {
  // Named backups sit outside the schedule: they neither fill a GFS slot nor count for keep-last,
  // so the scheduled series stays whole when someone takes one.
  const scheduled = sorted.filter((b) => valid.has(b) && !b.name);
  if (policy.gfs) {
    for (const [backup, reason] of gfsReasons(scheduled, policy.gfs, now)) add(backup, reason);
  }
  for (const backup of sorted) {
    const maxAge = maxAgeOf(backup, policy);
    if (maxAge && now.getTime() - time(backup) < maxAge.ms) {
      add(backup, {
        rule: maxAge.rule,
        detail: `${backup.kind} backup younger than ${formatRetentionDuration(maxAge.ms)}`,
      });
    }
  }
  if (policy.keepLast && policy.keepLast > 0) {
    const newest = scheduled.slice(-policy.keepLast);
    newest.forEach((backup, index) =>
      add(backup, {
        rule: 'keep-last',
        detail: `${newest.length - index} of the newest ${policy.keepLast}`,
      }),
    );
  }
  if (policy.recoveryWindowMs && policy.recoveryWindowMs > 0) {
    const windowStart = now.getTime() - policy.recoveryWindowMs;
    const span = formatRetentionDuration(policy.recoveryWindowMs);
    // Prefer a backup restore can start the current window from (continuous WAL to the end of
    // the newest timeline); only when there is none, any restorable one.
    const before = sorted.filter((b) => time(b) <= windowStart);
    const anchor = before.filter((b) => usable.has(b)).at(-1) ?? before.filter((b) => valid.has(b)).at(-1);
    const threshold = anchor ? time(anchor) : windowStart;
    for (const backup of sorted) {
      if (backup === anchor) {
        add(backup, {
          rule: 'recovery-window',
          detail: `newest backup consistent before the ${span} window starts (${iso(windowStart)}): the window begins from it`,
        });
      } else if (time(backup) > threshold) {
        add(backup, { rule: 'recovery-window', detail: `inside the ${span} recovery window` });
      }
    }
  }
}

/** Every backup a kept incremental (with its chain complete) builds on stays: restore reads the whole chain. */
function keepParentsOfKept(
  sorted: readonly BackupRecord[],
  complete: ReadonlySet<BackupRecord>,
  reasons: ReadonlyMap<BackupRecord, KeepReason[]>,
  add: (backup: BackupRecord, reason: KeepReason) => void,
): void {
  const byId = new Map(sorted.map((b) => [b.id, b]));
  for (const backup of [...sorted].reverse()) {
    if (backup.kind !== 'incremental' || !complete.has(backup) || reasons.get(backup)!.length === 0) continue;
    for (let parent = byId.get(backup.parent ?? ''); parent;) {
      if (reasons.get(parent)!.some((r) => r.rule === 'needed-by-incremental')) break;
      add(parent, {
        rule: 'needed-by-incremental',
        detail: `kept incremental backup ${backup.id} builds on it`,
      });
      parent = parent.kind === 'incremental' ? byId.get(parent.parent ?? '') : undefined;
    }
  }
}

function explainExpiry(
  backup: BackupRecord,
  valid: boolean,
  policy: RetentionPolicy,
  now: Date,
): ExpiredBackup {
  const reasons: string[] = [];
  const rules: ExpireRule[] = [];
  if (!valid) {
    rules.push('not-restorable');
    reasons.push('its WAL from start to end is not in the archive, so it cannot be restored');
  }
  const maxAge = maxAgeOf(backup, policy);
  if (maxAge) {
    rules.push(maxAge.rule);
    reasons.push(
      `${backup.kind} backup older than ${formatRetentionDuration(maxAge.ms)} (${((now.getTime() - time(backup)) / DAY_MS).toFixed(1)} days)`,
    );
  }
  if (policy.gfs && policy.gfs.daily + policy.gfs.weekly + policy.gfs.monthly > 0) {
    rules.push('gfs');
    const { daily, weekly, monthly } = policy.gfs;
    reasons.push(
      `not the newest of its day, week or month within the last ${daily} days, ${weekly} weeks, ${monthly} months`,
    );
  }
  if (policy.keepLast) {
    rules.push('keep-last');
    reasons.push(`not among the newest ${policy.keepLast}`);
  }
  if (policy.recoveryWindowMs) {
    rules.push('recovery-window');
    reasons.push(
      `older than the backup the ${formatRetentionDuration(policy.recoveryWindowMs)} recovery window starts from`,
    );
  }
  return {
    id: backup.id,
    endTime: backup.endTime,
    valid,
    rule: rules[0] ?? 'no-rule',
    reasons: reasons.length ? reasons : ['no retention rule is configured'],
  };
}

/** Which WAL stays: everything a kept backup can replay through; the rest goes, oldest first. */
function planWal(
  kept: readonly BackupRecord[],
  inventory: WalInventory,
  options: PlanExpiryOptions,
  keepEverything: boolean,
): Pick<ExpiryPlan, 'walToDelete' | 'walDeleteRanges' | 'walKept'> {
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

/**
 * Backups a restore to the end of the archive can start from, as the restorable window counts
 * them: inside the last continuous WAL range of the newest timeline, and on its branch.
 */
function windowUsable(
  sorted: readonly BackupRecord[],
  inventory: WalInventory,
  options: PlanExpiryOptions,
  current: number | undefined,
  onCurrent: (b: BackupRecord) => boolean,
): Set<BackupRecord> {
  const range = current === undefined ? undefined : walRanges(inventory, current, options.segmentSize).at(-1);
  if (!range) return new Set();
  return new Set(
    sorted.filter(
      (b) => onCurrent(b) && parseLsn(b.startLsn) >= range.start && parseLsn(b.endLsn) <= range.end,
    ),
  );
}

/** The backup's WAL from start to end LSN is in the archive on its timeline (so it can be restored). */
export function isRestorable(backup: BackupRecord, inventory: WalInventory, segmentSize: number): boolean {
  const start = parseLsn(backup.startLsn);
  const end = parseLsn(backup.endLsn);
  return walRanges(inventory, backup.timeline, segmentSize).some((r) => r.start <= start && r.end >= end);
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

function maxAgeOf(
  backup: BackupRecord,
  policy: RetentionPolicy,
): { rule: 'max-age-full' | 'max-age-incremental'; ms: number } | undefined {
  const kind = backup.kind;
  const ms = kind === 'full' ? policy.maxAge?.fullMs : policy.maxAge?.incrementalMs;
  return ms ? { rule: kind === 'full' ? 'max-age-full' : 'max-age-incremental', ms } : undefined;
}

function time(backup: BackupRecord): number {
  return Date.parse(backup.endTime);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
