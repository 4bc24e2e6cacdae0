import type { BackupRecord } from '../repository/backup-catalog.ts';
import { gfsReasons } from './gfs.ts';
import type { KeepReason } from './keep-rules.ts';
import { formatRetentionDuration, type RetentionPolicy } from './retention-policy.ts';

// The configured rules' reasons to keep a backup (GFS, max age, keep-last, recovery window) and
// the parents a kept incremental needs.

/** Records one more reason to keep a backup. */
export type AddReason = (backup: BackupRecord, reason: KeepReason) => void;

export function applyPolicy(
  sorted: readonly BackupRecord[],
  valid: ReadonlySet<BackupRecord>,
  usable: ReadonlySet<BackupRecord>,
  policy: RetentionPolicy,
  now: Date,
  add: AddReason,
): void {
  // Named backups sit outside the schedule: they neither fill a GFS slot nor count for keep-last,
  // so the scheduled series stays whole when someone takes one.
  const scheduled = sorted.filter((b) => valid.has(b) && !b.name);
  if (policy.gfs) {
    for (const [backup, reason] of gfsReasons(scheduled, policy.gfs, now)) add(backup, reason);
  }
  for (const backup of sorted) {
    const maxAge = maxAgeOf(backup, policy);
    if (maxAge && now.getTime() - backupTime(backup) < maxAge.ms) {
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
    const before = sorted.filter((b) => backupTime(b) <= windowStart);
    const anchor = before.filter((b) => usable.has(b)).at(-1) ?? before.filter((b) => valid.has(b)).at(-1);
    const threshold = anchor ? backupTime(anchor) : windowStart;
    for (const backup of sorted) {
      if (backup === anchor) {
        add(backup, {
          rule: 'recovery-window',
          detail: `newest backup consistent before the ${span} window starts (${iso(windowStart)}): the window begins from it`,
        });
      } else if (backupTime(backup) > threshold) {
        add(backup, { rule: 'recovery-window', detail: `inside the ${span} recovery window` });
      }
    }
  }
}

/** Every backup a kept incremental (with its chain complete) builds on stays: restore reads the whole chain. */
export function keepParentsOfKept(
  sorted: readonly BackupRecord[],
  complete: ReadonlySet<BackupRecord>,
  reasons: ReadonlyMap<BackupRecord, KeepReason[]>,
  add: AddReason,
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

export function maxAgeOf(
  backup: BackupRecord,
  policy: RetentionPolicy,
): { rule: 'max-age-full' | 'max-age-incremental'; ms: number } | undefined {
  const kind = backup.kind;
  const ms = kind === 'full' ? policy.maxAge?.fullMs : policy.maxAge?.incrementalMs;
  return ms ? { rule: kind === 'full' ? 'max-age-full' : 'max-age-incremental', ms } : undefined;
}

/** A backup's place in time: its end (when it became consistent). */
export function backupTime(backup: BackupRecord): number {
  return Date.parse(backup.endTime);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
