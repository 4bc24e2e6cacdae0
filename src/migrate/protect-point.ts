import type { Logger } from 'pino';
import { takeBackup } from '../backup/base-backup.ts';
import { planBackupWal } from '../backup/wal-coverage.ts';
import { deliverWal, walDurableTo } from '../backup/wal-delivery.ts';
import type { Compression } from '../pipeline/compression.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { ReplicationClient } from '../postgres/replication-client.ts';
import { listBackups } from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { restorableWindow } from '../repository/restorable-window.ts';
import { readWalInventory } from '../repository/wal-archive.ts';
import { formatLsn, parseLsn, parseSegmentSize, type Lsn } from '../wal/lsn.ts';

/** What a rollback restores to: a named restore point inside the restorable window, or a named backup. */
export type ProtectedPoint =
  | { kind: 'restore-point'; name: string; lsn: string; via: string }
  | { kind: 'backup'; name: string; id: string; why: string };

export type ProtectPolicy = 'restore-point' | 'backup';

export interface ProtectOptions {
  connection: ConnectionConfig;
  store: ObjectStore;
  keys: RepositoryKeys;
  compression: Compression;
  /** `restore-point` (default): a restore point when the WAL up to it can be made durable; else a backup. */
  policy: ProtectPolicy;
  /** Names the point and the backup: `warden-migrate-<stamp>`. */
  name: string;
  timeoutMs: number;
  logger: Logger;
  signal?: AbortSignal;
}

/**
 * Makes sure the cluster as it is now can be restored, before a migration changes it.
 *
 * A restore point (`pg_create_restore_point`) is cheap, but only worth something when the
 * repository then holds every WAL record up to it and a backup before it: the WAL goes the way a
 * backup's does (the running stream, or a short receiver through the repository's idle slot),
 * and the point must then lie inside the restorable window. When the repository has no stream
 * or slot (its WAL would start now, after a gap), no backup yet, or the policy says so, a named
 * full backup is taken instead.
 */
export async function protectCurrentState(options: ProtectOptions): Promise<ProtectedPoint> {
  if (options.policy === 'backup') return backupNow(options, 'the policy asks for a backup');
  const repository = await openRepository(options);
  const source = await planBackupWal({ connection: options.connection, repository, logger: options.logger });
  if (source.kind === 'temporary') {
    await source.client.close();
    return backupNow(
      options,
      'the repository has no WAL stream or slot of its own, so its WAL would not reach the point',
    );
  }
  const lsn = await createRestorePoint(options.connection, options.name);
  const error = await deliverWal({
    connection: options.connection,
    store: options.store,
    repository,
    source,
    target: lsn,
    segmentsOnly: false,
    timeoutMs: options.timeoutMs,
    logger: options.logger,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (error !== undefined) throw error;
  if (!(await walDurableTo(repository, lsn, false)))
    return backupNow(
      options,
      `the WAL up to the restore point ${formatLsn(lsn)} was not durable within ${options.timeoutMs / 1000} s`,
    );
  const inWindow = await insideWindow(repository, lsn);
  if (!inWindow)
    return backupNow(
      options,
      `the restore point ${formatLsn(lsn)} is outside the restorable window (no backup before it, or a WAL gap)`,
    );
  return {
    kind: 'restore-point',
    name: options.name,
    lsn: formatLsn(lsn),
    via:
      source.kind === 'stream'
        ? "the repository's running WAL stream"
        : `the repository's slot ${source.name}`,
  };
}

async function backupNow(options: ProtectOptions, why: string): Promise<ProtectedPoint> {
  options.logger.info({ why }, 'taking a named backup before the migration');
  const report = await takeBackup({
    connection: options.connection,
    store: options.store,
    compression: options.compression,
    name: options.name,
    keys: options.keys,
    logger: options.logger,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return { kind: 'backup', name: options.name, id: report.backup.id, why };
}

/** The LSN just past the restore point's WAL record. */
async function createRestorePoint(connection: ConnectionConfig, name: string): Promise<Lsn> {
  const client = await connect({ ...connection, applicationName: 'warden migrate' });
  try {
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_create_restore_point($1)::text AS lsn', [
      name,
    ]);
    return parseLsn(rows[0]!.lsn);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** True when a restore can reach `lsn`: it lies in a range of the window that starts from a backup. */
async function insideWindow(repository: Repository, lsn: Lsn): Promise<boolean> {
  const window = restorableWindow(
    await listBackups(repository),
    await readWalInventory(repository),
    repository.meta.walSegmentSize,
  );
  return window.ranges.some(
    (range) =>
      range.backups.length > 0 && parseLsn(range.earliestLsn) <= lsn && lsn <= parseLsn(range.latestLsn),
  );
}

async function openRepository(options: ProtectOptions): Promise<Repository> {
  const client = await ReplicationClient.connect({
    ...options.connection,
    applicationName: 'warden migrate',
  });
  try {
    const identity = await client.identifySystem();
    return await Repository.openFor(
      options.store,
      {
        systemId: identity.systemId,
        walSegmentSize: parseSegmentSize(await client.show('wal_segment_size')),
        serverVersion: await client.show('server_version'),
      },
      options.keys,
    );
  } finally {
    await client.close();
  }
}
