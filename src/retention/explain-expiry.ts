import type { BackupRecord } from '../repository/backup-catalog.ts';
import type { ExpireRule } from './keep-rules.ts';
import { backupTime, maxAgeOf } from './keep-policy.ts';
import { formatRetentionDuration, type RetentionPolicy } from './retention-policy.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

export interface ExpiredBackup {
  id: string;
  endTime: string;
  valid: boolean;
  rule: ExpireRule;
  /** Why each configured rule lets it go. */
  reasons: string[];
}

/** Why a backup no rule keeps goes: every configured rule's word on it, the first rule as the verdict. */
export function explainExpiry(
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
      `${backup.kind} backup older than ${formatRetentionDuration(maxAge.ms)} (${((now.getTime() - backupTime(backup)) / DAY_MS).toFixed(1)} days)`,
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
