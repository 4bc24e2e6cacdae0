import { statfs } from 'node:fs/promises';
import { WardenError } from '../errors.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { listBackups, type BackupRecord } from '../repository/backup-catalog.ts';
import { backupChain, completeChains } from '../repository/backup-chain.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { freePort, portInUse } from '../util/free-port.ts';
import { parseLsn, type Lsn } from '../wal/lsn.ts';

// What a scratch restore needs before any scratch file exists: the backup, the space, the port.

/** Free space needed for a scratch restore, relative to the backup's raw size. */
const SPACE_FACTOR = 1.2;

export type VerifyTarget =
  { kind: 'latest' } | { kind: 'time'; time: Date } | { kind: 'lsn'; lsn: Lsn; before?: boolean };

/** The newest backup with a complete chain that ends at or before the target, and that chain. */
export async function chooseBackup(
  store: ObjectStore,
  target: VerifyTarget,
  keys: RepositoryKeys | undefined,
): Promise<{ backup: BackupRecord; chain: BackupRecord[] }> {
  const backups = await listBackups(await Repository.open(store, keys));
  const restorable = completeChains(backups);
  const eligible =
    target.kind === 'latest'
      ? restorable
      : target.kind === 'lsn'
        ? restorable.filter((b) => parseLsn(b.endLsn) <= target.lsn)
        : restorable.filter((b) => Date.parse(b.endTime) <= target.time.getTime());
  const backup = eligible.at(-1);
  if (!backup) throw new WardenError('WARDEN_E_NO_BACKUP', 'the repository holds no backup to verify');
  return { backup, chain: backupChain(backup, backups) };
}

/** The restored size is at most the full backup plus every incremental on it. */
export async function checkFreeSpace(
  dir: string,
  backup: BackupRecord,
  chain: readonly BackupRecord[],
): Promise<void> {
  const raw = chain.flatMap((b) => b.archives).reduce((n, a) => n + a.rawSize, 0);
  const needed = Math.ceil(raw * SPACE_FACTOR);
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  if (free < needed) {
    throw new WardenError(
      'WARDEN_E_INSUFFICIENT_SPACE',
      `${dir} has ${free} bytes free; restoring backup ${backup.id} needs ${needed}`,
      {
        hint: 'Free space, or set daemon.verification.scratchDir to a larger disk.',
        details: { dir, free, needed, backup: backup.id },
      },
    );
  }
}

/**
 * A configured port is used as configured or refused: it was set for a reason (a firewall or
 * SELinux port policy, or a leftover scratch instance of a killed run still listening there),
 * and silently moving elsewhere would hide that. Unconfigured, any free port does.
 */
export async function choosePort(requested: number | undefined): Promise<number> {
  if (requested === undefined) return freePort();
  if (await portInUse(requested)) {
    throw new WardenError('WARDEN_E_PORT_IN_USE', `scratch port ${requested} on 127.0.0.1 is in use`, {
      hint: 'Stop what listens there, or change daemon.verification.port (unset, a free port is used).',
      details: { port: requested, field: 'daemon.verification.port' },
    });
  }
  return requested;
}
