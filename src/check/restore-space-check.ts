import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { nearestExisting } from './nearest-existing.ts';
import { listBackups } from '../repository/backup-catalog.ts';
import { backupChain } from '../repository/backup-chain.ts';
import type { Repository } from '../repository/repository.ts';
import { fail, ok, skip, type CheckResult } from './check-result.ts';

const NAME = 'restore-space';
/** A restored cluster takes about its backup's data size; 20 % more for WAL replayed into pg_wal. */
export const RESTORE_SPACE_FACTOR = 1.2;

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/**
 * Whether the newest backup would fit where a restore goes: the free space of the filesystem
 * holding `restoreDir` (or, while it does not exist, its nearest existing parent) against the
 * data of the backup's chain (a full backup and the incrementals on it) × 1.2.
 */
export async function checkRestoreSpace(repository: Repository, restoreDir: string): Promise<CheckResult> {
  const backups = await listBackups(repository);
  const newest = backups.at(-1);
  if (!newest) return skip(NAME, 'no backup in the repository yet');
  const chain = backupChain(newest, backups);
  const data = chain.flatMap((b) => b.archives).reduce((n, a) => n + a.rawSize, 0);
  const needed = Math.ceil(data * RESTORE_SPACE_FACTOR);
  const existing = nearestExisting(restoreDir);
  const fs = await statfs(existing);
  const free = fs.bavail * fs.bsize;
  const where =
    existing === path.resolve(restoreDir) ? restoreDir : `${restoreDir} (its filesystem: ${existing})`;
  const compared = `${mib(free)} free at ${where}; restoring the newest backup ${newest.id} needs about ${mib(needed)} (${mib(data)} of data${chain.length > 1 ? ` in a chain of ${chain.length}` : ''} × ${RESTORE_SPACE_FACTOR})`;
  const details = {
    restoreDir,
    filesystemOf: existing,
    freeBytes: free,
    neededBytes: needed,
    backup: newest.id,
  };
  if (free >= needed) return ok(NAME, compared, details);
  return fail(NAME, 'WARDEN_E_INSUFFICIENT_SPACE', compared, {
    fix: 'Free space there, or pass --restore-dir with the disk restores will go to.',
    details,
  });
}
