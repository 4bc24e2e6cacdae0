import { backupObjects, type BackupRecord } from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import type { StorageClassRule } from '../repository/storage-class-rules.ts';
import type { CopyTargetPlan } from './copy-target-plan.ts';

/** What `warden info` shows of storage classes and off-site copies for one cluster. */
export interface StorageInfo {
  /** The age rules of the cluster's own repository (`olderThan` in ms). */
  rules: Array<{ olderThanMs: number; storageClass: string }>;
  /** S3 repositories: the class of each backup's first archive (HeadObject), by backup id. */
  backups?: Array<{ id: string; storageClass: string }>;
  copyTo: Array<{
    name: string;
    location: string;
    rules: Array<{ olderThanMs: number; storageClass: string }>;
  }>;
}

/**
 * One HeadObject per backup (its first data object stands for the backup: the transition moves
 * a backup's objects together, by the backup's age); nothing for a store without classes.
 */
export async function collectStorageInfo(
  store: ObjectStore,
  backups: readonly BackupRecord[],
  rules: readonly StorageClassRule[],
  copyTo: readonly CopyTargetPlan[],
): Promise<StorageInfo> {
  const info: StorageInfo = {
    rules: rules.map((r) => ({ ...r })),
    copyTo: copyTo.map((t) => ({
      name: t.name,
      location: t.location.path,
      rules: t.storageClasses.map((r) => ({ ...r })),
    })),
  };
  if (store.storageClassOf) {
    info.backups = [];
    for (const backup of backups) {
      const first = backupObjects(backup)[0];
      if (first) info.backups.push({ id: backup.id, storageClass: await store.storageClassOf(first.key) });
    }
  }
  return info;
}
