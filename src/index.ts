/**
 * Warden's library surface for data protection. The CLI and the daemon are thin shells over
 * these functions. Application services import the separate `@warden/app` package instead
 * (packages/app: `@warden/app/db`, `/cache`, `/sessions`, `/ratelimit`); this package does not
 * re-export it, so installing the tool never pulls the data layer in and vice versa.
 */
export { takeBackup, type BackupOptions, type BackupReport } from './backup/base-backup.ts';
export { WalReceiver, type WalReceiverOptions, type WalReceiverStatus } from './backup/wal-receiver.ts';
export { listSlots, dropSlot, type SlotListEntry, type SlotDropReport } from './backup/slot-admin.ts';
export { restore, type RestoreOptions, type RestoreReport } from './restore/restore.ts';
export type { RestoreTarget } from './restore/restore-planner.ts';
export {
  restorableWindow,
  type RestorableRange,
  type RestorableWindow,
  type WalGap,
} from './repository/restorable-window.ts';
export { listBackups, getBackup, type BackupRecord } from './repository/backup-catalog.ts';
export { Repository } from './repository/repository.ts';
export { FsObjectStore } from './repository/fs/fs-object-store.ts';
export type { ObjectStore } from './repository/object-store.ts';
export { connectionFromUrl, type ConnectionConfig } from './postgres/connection-config.ts';
export { WardenError, isWardenError, ERROR_CODES, type ErrorCode } from './errors.ts';
export { expire, type ExpireOptions, type ExpireReport } from './retention/expire.ts';
export { planExpiry, type ExpiryPlan, type PlanExpiryOptions } from './retention/plan-expiry.ts';
export { deleteBackup, type DeleteBackupOptions } from './retention/delete-backup.ts';
export {
  DEFAULT_RETENTION_POLICY,
  parseDuration,
  type RetentionPolicy,
} from './retention/retention-policy.ts';
