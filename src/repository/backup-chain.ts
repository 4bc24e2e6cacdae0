import { WardenError } from '../errors.ts';
import type { BackupRecord } from './backup-catalog.ts';

/**
 * The backups a restore of `backup` reads, oldest first: the full backup at the root, then each
 * incremental on top of it, ending with `backup` itself. Throws WARDEN_E_BACKUP_CHAIN_BROKEN
 * naming the missing link when a parent is not in `all` (expired or deleted by hand).
 */
export function backupChain(backup: BackupRecord, all: readonly BackupRecord[]): BackupRecord[] {
  const byId = new Map(all.map((record) => [record.id, record]));
  const chain = [backup];
  for (let current = backup; current.kind === 'incremental';) {
    const parent = current.parent ? byId.get(current.parent) : undefined;
    if (!parent || chain.includes(parent)) {
      throw new WardenError(
        'WARDEN_E_BACKUP_CHAIN_BROKEN',
        `incremental backup ${current.id} builds on ${current.parent ?? '(none recorded)'}, which is not in the repository`,
        {
          hint: 'Restore from an older full backup or one whose chain is complete; the next scheduled full backup starts a new chain.',
          details: { backup: backup.id, missing: current.parent ?? null },
        },
      );
    }
    chain.unshift(parent);
    current = parent;
  }
  return chain;
}

/** Backups whose whole chain is present (every full backup; incrementals with all their parents). */
export function completeChains(all: readonly BackupRecord[]): BackupRecord[] {
  return all.filter((backup) => {
    try {
      backupChain(backup, all);
      return true;
    } catch {
      return false;
    }
  });
}
