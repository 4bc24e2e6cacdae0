import { existsSync } from 'node:fs';
import path from 'node:path';
import { WardenError } from '../errors.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { LocalInstance } from '../postgres/local-instance.ts';
import type { serverRunAs } from '../postgres/os-user.ts';
import type { BackupRecord } from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { verifyBackupAgainstManifest } from './backup-verify.ts';

/**
 * pg_verifybackup on the restored files when the server's own tool (same major) is installed
 * and the restore came from one full backup; otherwise the same check Warden makes itself on
 * the stored archives of every backup the restore read (size and CRC-32C of each file against
 * that backup's manifest): an incremental chain has no single manifest describing the result.
 */
export async function verifyManifest(
  bindir: string,
  dataDir: string,
  runAs: ReturnType<typeof serverRunAs>,
  store: ObjectStore,
  chain: readonly BackupRecord[],
  keys: RepositoryKeys | undefined,
): Promise<string> {
  const manifestPath = path.join(dataDir, 'backup_manifest');
  if (chain.length === 1 && existsSync(path.join(bindir, 'pg_verifybackup'))) {
    const tool = new LocalInstance({
      binaries: { bindir, major: 0, source: 'system' },
      dataDir,
      port: 0,
      runAs,
    });
    try {
      await tool.run('pg_verifybackup', ['--manifest-path', manifestPath, dataDir]);
    } catch (error) {
      throw new WardenError(
        'WARDEN_E_RESTORE_CHECK_FAILED',
        `pg_verifybackup: ${(error as { stderr?: string }).stderr?.trim() ?? String(error)}`,
      );
    }
    return 'pg_verifybackup: files and WAL match backup_manifest';
  }
  let files = 0;
  for (const backup of chain) {
    const { problems, manifestFiles } = await verifyBackupAgainstManifest(store, backup, keys);
    if (problems.length) {
      throw new WardenError(
        'WARDEN_E_RESTORE_CHECK_FAILED',
        `backup ${backup.id}: ${problems.map((p) => `${p.object}: ${p.message}`).join('; ')}`,
        { details: { problems } },
      );
    }
    files += manifestFiles;
  }
  return `${files} file(s) in ${chain.length} backup(s) match their backup_manifest (size and CRC-32C, checked by Warden)`;
}
