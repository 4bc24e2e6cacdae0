import type { BackupRecord } from '../repository/backup-catalog.ts';
import { completeChains } from '../repository/backup-chain.ts';
import { newestTimeline } from '../repository/restorable-window.ts';
import type { WalInventory } from '../repository/wal-archive.ts';
import { parseLsn } from '../wal/lsn.ts';
import type { TimelineHistoryEntry } from '../wal/timeline-history.ts';
import { isRestorable, windowUsable } from './backup-restorability.ts';
import { explainExpiry, type ExpiredBackup } from './explain-expiry.ts';
import { applyPolicy, backupTime, keepParentsOfKept } from './keep-policy.ts';
import type { KeepReason } from './keep-rules.ts';
import type { RetentionPolicy } from './retention-policy.ts';
import { onBranchOf } from './timeline-branch.ts';
import { planWal, type WalPlan } from './wal-plan.ts';

export type { ExpiredBackup } from './explain-expiry.ts';

export interface KeptBackup {
  id: string;
  name?: string;
  endTime: string;
  /** Its WAL from start to end LSN is in the archive: it can be restored. */
  valid: boolean;
  reasons: KeepReason[];
}

/** Which backups stay and why, which go and why, and the WAL that goes with them. */
export interface ExpiryPlan extends WalPlan {
  now: string;
  keep: KeptBackup[];
  expire: ExpiredBackup[];
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
  const sorted = [...backups].sort((a, b) => backupTime(a) - backupTime(b) || a.id.localeCompare(b.id));
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
    const usable = windowUsable(sorted, walInventory, options.segmentSize, current, onCurrent);
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
