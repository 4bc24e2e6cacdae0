import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { isWardenError, WardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import { LocalInstance, renderSettings } from '../postgres/local-instance.ts';
import { chownTree, serverRunAs } from '../postgres/os-user.ts';
import { findServerBinaries, majorOfVersion } from '../postgres/server-binaries.ts';
import {
  backupPrefix,
  listBackups,
  type ArchiveObject,
  type BackupRecord,
  type StoredObject,
} from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import {
  historyKey,
  checkPartialTrusted,
  readPartialSegment,
  readHistory,
  readSegment,
  segmentDataKey,
  readWalInventory,
  type PartialSegment,
  type SegmentRecord,
} from '../repository/wal-archive.ts';
import { freePort, portInUse } from '../util/free-port.ts';
import { StepRecorder, type StepReport } from '../util/report.ts';
import { summarizeSegment, type SegmentSummary } from '../wal/segment-summary.ts';
import { setDataDirectoryMode } from './data-dir-mode.ts';
import { planRestore, type RestorePlan, type RestoreTarget } from './restore-planner.ts';
import { extractTar } from './tar-extract.ts';
import { openNoFollow, readNoFollow, refuseEntry, writeNoFollow } from './confined-dir.ts';
import { syncTree } from '../util/sync-tree.ts';
import { applyIncrementalTar, fullBackupLabel, pruneUnseen } from './incremental-apply.ts';
import { consumeVerified } from './verified-reader.ts';
import { waitForPromotion } from './recovery-wait.ts';
import { checkRestoreKeys } from './key-check.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';

export interface RestoreOptions {
  store: ObjectStore;
  target: RestoreTarget;
  targetDir: string;
  /** Start the restored instance and wait until it reached the target and serves. */
  start?: boolean;
  port?: number;
  /** Identities to decrypt encrypted objects with; checked before anything is written. */
  keys?: RepositoryKeys;
  logger?: Logger;
}

export interface RestoreReport {
  backupId: string;
  targetDir: string;
  target: RestoreTarget;
  recovery: Record<string, string>;
  walSegments: number;
  port?: number;
  /** Wall time from start of restore until the instance serves (or until files are in place). */
  restoreMs: number;
  steps: StepReport[];
}

/**
 * Restores into a NEW data directory (never the source): base backup files, exactly the WAL the
 * target needs (decompressed ahead into pg_wal, so PostgreSQL starts no process per segment for
 * fetching), recovery settings; with `start`, runs the instance until it is promoted.
 */
export async function restore(options: RestoreOptions): Promise<RestoreReport> {
  const started = performance.now();
  const logger = options.logger ?? silentLogger;
  const targetDir = path.resolve(options.targetDir);
  const steps = new StepRecorder();
  const createdTarget = await steps.run('check target', () => prepareTarget(targetDir));
  const tablespacesDir = `${targetDir}_tablespaces`;
  const tablespacesExisted = existsSync(tablespacesDir);
  const repository = await Repository.open(options.store, options.keys);
  const segmentSize = repository.meta.walSegmentSize;
  let plan: RestorePlan;
  let partialRaw: Buffer | undefined;
  try {
    plan = await steps.run(
      'plan',
      async () => {
        const inventory = await readWalInventory(repository);
        // Before the partials' bytes feed the plan (commit times, restore points) or the target.
        for (const partial of inventory.partials) await checkPartialTrusted(repository, partial);
        const newestPartial = inventory.partials.sort((a, b) => Number(b.startLsn - a.startLsn))[0];
        partialRaw = newestPartial ? await readNewestPartial(repository, newestPartial) : undefined;
        const partial =
          newestPartial && partialRaw ? summarizePartial(partialRaw, newestPartial, segmentSize) : undefined;
        return planRestore(
          options.target,
          await listBackups(repository),
          inventory,
          segmentSize,
          partial?.lastCommitTime,
          partial?.restorePoints,
        );
      },
      (p) => `backup ${p.backup.id}, ${p.segments.length + p.partials.length} WAL segment(s)`,
    );
    await steps.run(
      'check keys',
      () =>
        checkRestoreKeys(options.store, repository.keys, [
          ...plan.chain.flatMap((backup) => [...backup.archives, backup.manifest]),
          ...plan.segments.map((s) => ({ ...s, key: segmentDataKey(s.timeline, s.segment) })),
        ]),
      (r) => (r.encryptedObjects ? `${r.encryptedObjects} encrypted object(s) open` : 'not encrypted'),
    );
    const port = options.start ? await choosePort(options.port) : options.port;
    await steps.run(
      plan.chain.length > 1
        ? `restore base backup and ${plan.chain.length - 1} incremental(s)`
        : 'restore base backup',
      () => restoreFiles(options.store, plan.chain, targetDir, repository.keys),
    );
    await steps.run('restore WAL', () => placeWal(repository, plan, targetDir));
    await steps.run('write recovery settings', () => writeRecoveryConfig(targetDir, plan, port, repository));
    await setDataDirectoryMode(targetDir);
    const runAs = serverRunAs();
    await chownTree(targetDir, runAs);
    await steps.run(
      'sync to disk',
      async () => {
        let synced = await syncTree(targetDir);
        if (existsSync(`${targetDir}_tablespaces`)) synced += await syncTree(`${targetDir}_tablespaces`);
        return synced;
      },
      (synced) => `${synced} files and directories`,
    );
    if (options.start) {
      const binaries = await findServerBinaries(process.env, {
        major: majorOfVersion(plan.backup.serverVersion),
      });
      const instance = new LocalInstance({ binaries, dataDir: targetDir, port: port!, runAs });
      await steps.run('start and recover', async () => {
        await instance.start({ timeoutSeconds: 3600 });
        await waitForPromotion(instance);
      });
    }
    const report: RestoreReport = {
      backupId: plan.backup.id,
      targetDir,
      target: options.target,
      recovery: plan.recovery,
      walSegments: plan.segments.length + plan.partials.length,
      ...(port !== undefined ? { port } : {}),
      restoreMs: Math.round(performance.now() - started),
      steps: steps.steps,
    };
    logger.info({ backup: report.backupId, targetDir, restoreMs: report.restoreMs }, 'restore finished');
    return report;
  } catch (error) {
    // Leave nothing half-restored behind: the target goes back to how we found it.
    if (createdTarget) await rm(targetDir, { recursive: true, force: true });
    else await emptyDir(targetDir);
    // Tablespaces go beside the target: the directory for them too, when this restore made it.
    if (!tablespacesExisted) await rm(tablespacesDir, { recursive: true, force: true });
    throw error;
  }
}

/** Refuses a non-empty target; returns true when this restore created the directory. */
async function prepareTarget(targetDir: string): Promise<boolean> {
  if (existsSync(targetDir)) {
    const entries = await readdir(targetDir);
    if (entries.length > 0) {
      throw new WardenError('WARDEN_E_TARGET_NOT_EMPTY', `restore target ${targetDir} is not empty`, {
        hint: 'Restore into a new or empty directory; Warden never overwrites an existing data directory.',
        details: { targetDir, entries: entries.slice(0, 5) },
      });
    }
    return false;
  }
  await mkdir(targetDir, { recursive: true, mode: 0o700 });
  return true;
}

async function emptyDir(dir: string): Promise<void> {
  for (const entry of await readdir(dir).catch(() => [] as string[]))
    await rm(path.join(dir, entry), { recursive: true, force: true });
}

async function choosePort(requested: number | undefined): Promise<number> {
  if (requested === undefined) return freePort();
  if (await portInUse(requested)) {
    throw new WardenError('WARDEN_E_USAGE', `port ${requested} is already in use`, {
      hint: 'Pick a free port with --port, or omit it to get one.',
      details: { port: requested },
    });
  }
  return requested;
}

/**
 * Materializes the chain's files: the full backup's archives, then each incremental applied on
 * top (changed blocks written, dropped files removed), then the last backup's labels made those
 * of a full backup. The last backup's manifest goes beside the files only when it describes
 * them (a full backup): an incremental one lists INCREMENTAL.* files instead.
 */
async function restoreFiles(
  store: ObjectStore,
  chain: readonly BackupRecord[],
  targetDir: string,
  keys: RepositoryKeys,
): Promise<void> {
  const [full, ...incrementals] = chain;
  for (const archive of full!.archives) {
    const dir = archiveDir(targetDir, full!, archive);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const options = linkOptions(full!, archive);
    await readArchive(store, archive, keys, (stream) => extractTar(stream, dir, archive.key, options));
  }
  for (const backup of incrementals) {
    for (const archive of backup.archives) {
      const dir = archiveDir(targetDir, backup, archive);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const options = linkOptions(backup, archive);
      const applied = await readArchive(store, archive, keys, (stream) =>
        applyIncrementalTar(stream, dir, archive.key, options),
      );
      await pruneUnseen(dir, applied.seen);
    }
    // Tablespaces dropped since the previous backup.
    const kept = new Set(backup.archives.map((archive) => archiveDir(targetDir, backup, archive)));
    for (const name of await readdir(`${targetDir}_tablespaces`).catch(() => [] as string[])) {
      const dir = path.join(`${targetDir}_tablespaces`, name);
      if (!kept.has(dir)) await rm(dir, { recursive: true, force: true });
    }
  }
  const last = chain.at(-1)!;
  if (incrementals.length) {
    const labelFile = path.join(targetDir, 'backup_label');
    await writeNoFollow(labelFile, fullBackupLabel(await readNoFollow(labelFile)));
  } else {
    await writeManifest(store, last.manifest, targetDir, keys);
  }
  // Tablespaces are restored beside the target, never over the source's locations: the map is
  // always Warden's own, and an archive's map (which names the source's locations) never stays.
  // Without tablespaces the archive's map is emptied, not removed: PostgreSQL's own (empty) map is
  // listed in backup_manifest, and pg_verifybackup checks it is there.
  const tablespaceMap = last.archives
    .filter((archive) => archive.tablespace)
    .map((archive) => `${archive.tablespace!.oid} ${archiveDir(targetDir, last, archive)}`);
  const mapFile = path.join(targetDir, 'tablespace_map');
  if (tablespaceMap.length) await writeNoFollow(mapFile, `${tablespaceMap.join('\n')}\n`);
  else if (existsSync(mapFile)) await writeNoFollow(mapFile, '');
}

/**
 * Where an archive is restored. A tablespace's OID comes from the backup record and becomes a
 * directory name, so it must be all digits (as PostgreSQL's OIDs are), or the record is refused.
 */
function archiveDir(targetDir: string, backup: BackupRecord, archive: ArchiveObject): string {
  if (!archive.tablespace) return targetDir;
  const oid = archive.tablespace.oid;
  if (!/^\d+$/.test(oid)) {
    throw refuseEntry(
      `${backupPrefix(backup.id)}backup.json`,
      oid,
      'tablespace-oid-invalid',
      'a tablespace OID that is not a number',
    );
  }
  return `${targetDir}_tablespaces/${oid}`;
}

/** The main data directory's archive may hold its tablespaces' `pg_tblspc/<oid>` links; no other. */
function linkOptions(backup: BackupRecord, archive: ArchiveObject): { tablespaces?: ReadonlySet<string> } {
  if (archive.tablespace) return {};
  return { tablespaces: new Set(backup.archives.flatMap((a) => (a.tablespace ? [a.tablespace.oid] : []))) };
}

/** Reads one archive decompressed and verified against its recorded checksum. */
function readArchive<T>(
  store: ObjectStore,
  archive: ArchiveObject,
  keys: RepositoryKeys,
  consume: (stream: Readable) => Promise<T>,
): Promise<T> {
  const compression = archive.key.endsWith('.zst') ? 'zstd' : archive.key.endsWith('.gz') ? 'gzip' : 'none';
  return consumeVerified(store, archive, compression, keys, consume);
}

/** PostgreSQL's backup_manifest beside the files, for pg_verifybackup and incremental backups. */
async function writeManifest(
  store: ObjectStore,
  manifest: StoredObject,
  targetDir: string,
  keys: RepositoryKeys,
): Promise<void> {
  const file = await openNoFollow(path.join(targetDir, 'backup_manifest'));
  await consumeVerified(store, manifest, 'zstd', keys, (stream) =>
    pipeline(stream, file.createWriteStream()),
  );
}

async function placeWal(repository: Repository, plan: RestorePlan, targetDir: string): Promise<void> {
  const walDir = path.join(targetDir, 'pg_wal');
  await mkdir(walDir, { recursive: true, mode: 0o700 });
  for (let timeline = 2; timeline <= plan.timeline; timeline += 1) {
    const key = historyKey(timeline);
    if (await repository.store.stat(key)) {
      // Read again through the trust check: PostgreSQL follows what this file says.
      await writeNoFollow(
        path.join(walDir, key.slice(key.lastIndexOf('/') + 1)),
        await readHistory(repository, timeline),
      );
    }
  }
  // Decompress the next segment while the current one is written. A read-ahead that fails
  // (corrupt segment) is reported when awaited; until then it must not count as unhandled.
  const readAhead = (record: SegmentRecord) => {
    const read = readSegment(repository, record);
    read.catch(() => undefined);
    return read;
  };
  let pending = plan.segments[0] ? readAhead(plan.segments[0]) : undefined;
  for (let i = 0; i < plan.segments.length; i += 1) {
    const data = await pending!;
    const next = plan.segments[i + 1];
    pending = next ? readAhead(next) : undefined;
    await writeNoFollow(path.join(walDir, plan.segments[i]!.segment), data);
  }
  // Each partial under its own name: with two (one being archived), each holds its own bytes.
  for (const partial of plan.partials) {
    const { raw } = await readPartialSegment(repository, partial);
    await writeNoFollow(path.join(walDir, partial.segment), raw);
  }
}

/**
 * The newest partial segment, for its commit times and restore points while planning. A partial
 * that does not open (no fitting key, damaged frames) only costs the plan that summary: a target
 * before it needs none of its bytes, and when the plan does include it, `restore WAL` reads it
 * again and fails with the key or corruption error.
 */
async function readNewestPartial(
  repository: Repository,
  partial: PartialSegment,
): Promise<Buffer | undefined> {
  try {
    return (await readPartialSegment(repository, partial)).raw;
  } catch (error) {
    if (isWardenError(error)) return undefined;
    throw error;
  }
}

function summarizePartial(
  raw: Buffer,
  partial: PartialSegment,
  segmentSize: number,
): SegmentSummary | undefined {
  try {
    return summarizeSegment(raw, {
      timeline: partial.timeline,
      startLsn: partial.startLsn,
      segmentSize,
      validBytes: partial.validBytes,
      verifyCrc: false,
    });
  } catch {
    return undefined;
  }
}

/**
 * Recovery settings plus what keeps the restored instance away from the source: its own port,
 * loopback only, no archiving into the source's archive, no replication from the old primary.
 */
async function writeRecoveryConfig(
  targetDir: string,
  plan: RestorePlan,
  port: number | undefined,
  repository: Repository,
): Promise<void> {
  for (const file of ['standby.signal', 'postmaster.pid', 'postmaster.opts'])
    await rm(path.join(targetDir, file), { force: true });
  await writeNoFollow(path.join(targetDir, 'recovery.signal'), '');
  if (!existsSync(path.join(targetDir, 'postgresql.conf')))
    await writeNoFollow(path.join(targetDir, 'postgresql.conf'), '# written by warden restore\n');
  if (!existsSync(path.join(targetDir, 'pg_hba.conf'))) {
    await writeNoFollow(
      path.join(targetDir, 'pg_hba.conf'),
      'host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n',
    );
  }
  if (!existsSync(path.join(targetDir, 'pg_ident.conf')))
    await writeNoFollow(path.join(targetDir, 'pg_ident.conf'), '');
  const settings: Record<string, string | number> = {
    // WAL is already in pg_wal; this command only tells PostgreSQL the archive has nothing more.
    restore_command: 'false',
    archive_mode: 'off',
    primary_conninfo: '',
    primary_slot_name: '',
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    hba_file: path.join(targetDir, 'pg_hba.conf'),
    ident_file: path.join(targetDir, 'pg_ident.conf'),
    ...(port !== undefined ? { port } : {}),
    ...plan.recovery,
  };
  const autoConf = path.join(targetDir, 'postgresql.auto.conf');
  const existing = await readNoFollow(autoConf).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  await writeNoFollow(
    autoConf,
    `${existing}\n# warden restore of backup ${plan.backup.id} from ${repository.location}\n${renderSettings(settings)}`,
  );
}
