import type { Logger } from 'pino';
import { WardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import { backupPrefix, getBackup, listBackups, type BackupRecord } from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { completeChains } from '../repository/backup-chain.ts';
import { acquireLock } from '../repository/repository-lock.ts';
import { readWalInventory } from '../repository/wal-archive.ts';
import { isRestorable } from './backup-restorability.ts';
import { throwIfAborted } from '../util/abort.ts';

/**
 * Removes one backup: `backup.json` first, which uncommits it (from then on it is an unfinished
 * attempt, never listed), then every object under its prefix. Idempotent.
 */
export async function deleteBackupObjects(store: ObjectStore, id: string): Promise<void> {
  const prefix = backupPrefix(id);
  await store.delete(`${prefix}backup.json`);
  for (const key of await store.list(prefix, { includeIncomplete: true })) await store.delete(key);
  // A directory store keeps the emptied directory otherwise; an object store ignores the prefix.
  await store.delete(prefix);
}

export interface DeleteBackupOptions {
  store: ObjectStore;
  /** Backup id or name. */
  backup: string;
  /** Also delete the newest restorable backup. */
  force?: boolean;
  logger?: Logger;
  /** Stops before anything is deleted (WARDEN_E_ABORTED); once deleting began, it finishes. */
  signal?: AbortSignal;
}

/**
 * `warden backup delete`: deletes one backup explicitly (the only way a named backup goes),
 * under the repository's `backup` lock. Refuses the newest restorable backup unless `force`
 * (`WARDEN_E_BACKUP_PROTECTED`). WAL it alone needed is left for the next `expire`.
 *
 * @example await deleteBackup({ store, backup: 'pre-v1.13.0-upgrade' });
 */
export async function deleteBackup(options: DeleteBackupOptions): Promise<BackupRecord> {
  const repository = await Repository.open(options.store);
  const lock = await acquireLock(options.store, 'backup', `delete backup ${options.backup}`);
  try {
    const record = await getBackup(repository, options.backup);
    const inventory = await readWalInventory(repository);
    const all = await listBackups(repository);
    const dependents = all.filter((b) => b.parent === record.id).map((b) => b.id);
    if (dependents.length) {
      throw new WardenError(
        'WARDEN_E_BACKUP_PROTECTED',
        `backup ${record.id} is the parent of incremental backup(s) ${dependents.join(', ')}; deleting it would make them unrestorable`,
        {
          hint: 'Delete the incremental backups built on it first (newest first).',
          details: { id: record.id, dependents },
        },
      );
    }
    const newestValid = completeChains(all)
      .filter((b) => isRestorable(b, inventory, repository.meta.walSegmentSize))
      .at(-1);
    if (newestValid?.id === record.id && !options.force) {
      throw new WardenError(
        'WARDEN_E_BACKUP_PROTECTED',
        `backup ${record.id} is the newest restorable backup; refusing to delete it`,
        {
          hint: 'Take a newer backup first, or pass --force if you really mean to delete it.',
          details: { id: record.id, name: record.name },
        },
      );
    }
    lock.assertHeld();
    throwIfAborted(options.signal, `deleting backup ${record.id}`);
    await deleteBackupObjects(options.store, record.id);
    (options.logger ?? silentLogger).info({ id: record.id, name: record.name }, 'backup deleted');
    return record;
  } finally {
    await lock.release();
  }
}
