import { existsSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { isWardenError, WardenError } from '../errors.ts';
import { abortable, abortedError, onAbort, throwIfAborted } from '../util/abort.ts';
import { claimTarget, HELD_BACK, INCOMPLETE_MARKER } from './target-dir.ts';
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
  readPartialOrArchived,
  readHistory,
  readSegment,
  segmentDataKey,
  readWalInventory,
  type PartialSegment,
  type SegmentRecord,
} from '../repository/wal-archive.ts';
import { freePort, portInUse } from '../util/free-port.ts';
import { StepRecorder, type StepReport } from '../util/step-recorder.ts';
import { summarizeSegment, type SegmentSummary } from '../wal/segment-summary.ts';
import { setDataDirectoryMode } from './data-dir-mode.ts';
import { elapsedMs, eventError, subjectOf, type ObservedOptions } from '../events/observed.ts';
import { formatLsn } from '../wal/lsn.ts';
import { planRestore, type RestorePlan, type RestoreTarget } from './restore-planner.ts';
import { extractTar } from './tar-extract.ts';
import { openNoFollow, readNoFollow, refuseEntry, writeNoFollow } from './confined-dir.ts';
import { syncTree } from '../util/sync-tree.ts';
import { applyIncrementalTar, fullBackupLabel, pruneUnseen } from './incremental-apply.ts';
import { consumeVerified } from '../pipeline/object-source.ts';
import { waitForPromotion } from './recovery-wait.ts';
import { readRecoveredPoint, type RecoveredPoint } from './recovered-point.ts';
import { checkRestoreKeys } from './key-check.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { writeStandbyConfig, type StandbySettings } from './standby-settings.ts';

export interface RestoreOptions extends ObservedOptions {
  store: ObjectStore;
  target: RestoreTarget;
  targetDir: string;
  /** Start the restored instance and wait until it reached the target and serves. */
  start?: boolean;
  port?: number;
  /** Identities to decrypt encrypted objects with; checked before anything is written. */
  keys?: RepositoryKeys;
  logger?: Logger;
  /**
   * A target holding a restore that did not complete (killed, power loss) is removed first;
   * without it such a target fails with WARDEN_E_RESTORE_INCOMPLETE.
   */
  cleanIncomplete?: boolean;
  /** Stops the restore (WARDEN_E_ABORTED); the target is returned to how it was found. */
  signal?: AbortSignal;
  /**
   * Materialize a standby instead of a recovered copy (standby-settings.ts): standby.signal, no
   * recovery target, WAL fetched by `restore_command` (`warden wal get`) rather than placed in
   * pg_wal, then streamed from the primary. `start` is not for standbys.
   */
  standby?: StandbySettings;
}

export interface RestoreReport {
  backupId: string;
  targetDir: string;
  target: RestoreTarget;
  recovery: Record<string, string>;
  walSegments: number;
  port?: number;
  /** With `start`: what recovery reached (see recovered-point.ts). */
  recovered?: RecoveredPoint;
  /** The OS user the server runs as when it is not this process's (Warden runs as root). */
  serverUser?: string;
  /** Where pg_ctl of the backup's major version is, when found. */
  binDir?: string;
  /** Wall time from start of restore until the instance serves (or until files are in place). */
  restoreMs: number;
  steps: StepReport[];
}

/**
 * Restores into a NEW data directory (never the source): base backup files, exactly the WAL the
 * target needs (decompressed ahead into pg_wal, so PostgreSQL starts no process per segment for
 * fetching), recovery settings; with `start`, runs the instance until it is promoted.
 *
 * Until it completed, the directory is marked incomplete and PG_VERSION and global/pg_control
 * are held back under other names, so PostgreSQL refuses it whatever stopped the restore (see
 * target-dir.ts). Any failure, a stop through `signal` included, returns the target to how it
 * was found.
 */
export async function restore(options: RestoreOptions): Promise<RestoreReport> {
  const events = options.events;
  if (!events) return restoreUnobserved(options);
  const subject = subjectOf(options, options.store);
  const started = performance.now();
  try {
    const report = await restoreUnobserved(options);
    events.emit('restore.succeeded', {
      ...subject,
      at: new Date().toISOString(),
      durationMs: elapsedMs(started),
      backupId: report.backupId,
      target: describeTarget(report.target),
    });
    return report;
  } catch (error) {
    const at = new Date().toISOString();
    events.emit('restore.failed', {
      ...subject,
      at,
      durationMs: elapsedMs(started),
      error: eventError(error),
    });
    throw error;
  }
}

/** The target as events show it: `latest`, a time or an LSN (no path, nothing secret). */
function describeTarget(target: RestoreTarget): string {
  if (target.kind === 'latest') return 'latest';
  if (target.kind === 'time') return target.time.toISOString();
  if (target.kind === 'lsn') return formatLsn(target.lsn);
  if (target.kind === 'name') return `restore point ${target.name}`;
  return `backup ${target.id}`;
}

async function restoreUnobserved(options: RestoreOptions): Promise<RestoreReport> {
  const started = performance.now();
  const logger = options.logger ?? silentLogger;
  const { signal } = options;
  const targetDir = path.resolve(options.targetDir);
  const steps = new StepRecorder();
  const runAs = serverRunAs();
  const target = await steps.run(
    'check target',
    () => claimTarget(targetDir, { cleanIncomplete: options.cleanIncomplete === true, runAs }),
    (claimed) => (claimed.cleaned ? 'an incomplete restore found there was removed first' : ''),
  );
  let instance: LocalInstance | undefined;
  try {
    const repository = await abortable(Repository.open(options.store, options.keys), signal, 'restore');
    const segmentSize = repository.meta.walSegmentSize;
    let partialRaw: Buffer | undefined;
    const plan = await steps.run(
      'plan',
      () =>
        abortable(
          (async () => {
            const inventory = await readWalInventory(repository);
            // Before the partials' bytes feed the plan (commit times, restore points) or the target.
            for (const partial of inventory.partials) await checkPartialTrusted(repository, partial);
            const newestPartial = inventory.partials.sort((a, b) => Number(b.startLsn - a.startLsn))[0];
            partialRaw = newestPartial ? await readNewestPartial(repository, newestPartial) : undefined;
            const partial =
              newestPartial && partialRaw
                ? summarizePartial(partialRaw, newestPartial, segmentSize)
                : undefined;
            return planRestore(
              options.target,
              await listBackups(repository),
              inventory,
              segmentSize,
              partial?.lastCommitTime,
              partial?.restorePoints,
            );
          })(),
          signal,
          'restore',
        ),
      (p) => `backup ${p.backup.id}, ${p.segments.length + p.partials.length} WAL segment(s)`,
    );
    await steps.run(
      'check keys',
      () =>
        abortable(
          checkRestoreKeys(repository, [
            ...plan.chain.flatMap((backup) => [...backup.archives, backup.manifest]),
            ...plan.segments.map((s) => ({ ...s, key: segmentDataKey(s.timeline, s.segment) })),
          ]),
          signal,
          'restore',
        ),
      (r) => (r.encryptedObjects ? `${r.encryptedObjects} encrypted object(s) open` : 'not encrypted'),
    );
    if (options.standby && options.start)
      throw new WardenError('WARDEN_E_USAGE', 'a standby is not started by the restore', {
        hint: 'Start it with pg_ctl (or let Patroni start it) once restored.',
      });
    const port = options.start ? await choosePort(options.port) : options.port;
    await steps.run(
      plan.chain.length > 1
        ? `restore base backup and ${plan.chain.length - 1} incremental(s)`
        : 'restore base backup',
      () => restoreFiles(repository, plan.chain, targetDir, signal),
    );
    if (options.standby) {
      // Timeline history files only: the standby's restore_command fetches the segments it needs.
      await steps.run('restore timeline history', () => placeHistories(repository, plan, targetDir));
      await steps.run('write standby settings', () =>
        writeStandbyConfig(
          targetDir,
          options.standby!,
          port,
          `backup ${plan.backup.id} from ${repository.location}`,
        ),
      );
    } else {
      await steps.run('restore WAL', () => placeWal(repository, plan, targetDir, signal));
      throwIfAborted(signal, 'restore');
      await steps.run('write recovery settings', () =>
        writeRecoveryConfig(targetDir, plan, port, repository),
      );
    }
    await setDataDirectoryMode(targetDir, path.join(targetDir, HELD_BACK.get('PG_VERSION')!));
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
    throwIfAborted(signal, 'restore');
    await steps.run(
      'mark complete',
      () => target.complete(),
      () => 'PG_VERSION and global/pg_control in place',
    );
    let recovered: RecoveredPoint | undefined;
    let binDir: string | undefined;
    if (options.start) {
      const binaries = await findServerBinaries(process.env, {
        major: majorOfVersion(plan.backup.serverVersion),
      });
      binDir = binaries.bindir;
      instance = new LocalInstance({ binaries, dataDir: targetDir, port: port!, runAs });
      await steps.run('start and recover', async () => {
        await instance!.start({ timeoutSeconds: 3600 });
        await abortable(waitForPromotion(instance!), signal, 'restore');
      });
      // What it reached is worth showing, not worth failing a restore that succeeded.
      recovered = await steps
        .run(
          'read recovered point',
          () => readRecoveredPoint(targetDir, repository, plan),
          (point) => (point ? `LSN ${point.lsn}` : 'no new timeline found'),
        )
        .catch((error: unknown) => {
          logger.warn({ err: error }, 'could not read what recovery reached');
          return undefined;
        });
    } else {
      binDir = await findServerBinaries(process.env, { major: majorOfVersion(plan.backup.serverVersion) })
        .then((binaries) => binaries.bindir)
        .catch(() => undefined);
    }
    const report: RestoreReport = {
      backupId: plan.backup.id,
      targetDir,
      target: options.target,
      recovery: plan.recovery,
      walSegments: plan.segments.length + plan.partials.length,
      ...(port !== undefined ? { port } : {}),
      ...(recovered ? { recovered } : {}),
      ...(runAs ? { serverUser: runAs.user } : {}),
      ...(binDir ? { binDir } : {}),
      restoreMs: Math.round(performance.now() - started),
      steps: steps.steps,
    };
    logger.info({ backup: report.backupId, targetDir, restoreMs: report.restoreMs }, 'restore finished');
    return report;
  } catch (error) {
    // Leave nothing half-restored behind: the target goes back to how we found it.
    if (instance) await instance.stop({ mode: 'immediate' }).catch(() => undefined);
    await target.giveBack();
    throw signal?.aborted ? abortedError('restore', error) : withoutRemovedFiles(error, targetDir);
  }
}

/**
 * A failure after the target was given back must not send the user to a file inside it: the
 * server's log (warden-server.log) went with it. Its tail is in `details.log` (the CLI prints it).
 */
function withoutRemovedFiles(error: unknown, targetDir: string): unknown {
  if (!isWardenError(error) || !error.hint?.includes(targetDir)) return error;
  const hint =
    typeof error.details.log === 'string' && error.details.log.trim()
      ? "The server log's last lines are below (its file was removed with the target, which is as it was before the restore)."
      : 'The target was returned to how it was before the restore (the server log went with it).';
  return new WardenError(error.code, error.message, {
    hint,
    details: error.details,
    cause: error.cause ?? error,
  });
}

async function choosePort(requested: number | undefined): Promise<number> {
  if (requested === undefined) return freePort();
  if (await portInUse(requested)) {
    throw new WardenError('WARDEN_E_PORT_IN_USE', `port ${requested} on 127.0.0.1 is already in use`, {
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
  repository: Repository,
  chain: readonly BackupRecord[],
  targetDir: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  const [full, ...incrementals] = chain;
  for (const archive of full!.archives) {
    const dir = archiveDir(targetDir, full!, archive);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const options = extractOptions(full!, archive);
    await readArchive(repository, archive, signal, (stream) => extractTar(stream, dir, archive.key, options));
  }
  for (const backup of incrementals) {
    for (const archive of backup.archives) {
      const dir = archiveDir(targetDir, backup, archive);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const options = extractOptions(backup, archive);
      const applied = await readArchive(repository, archive, signal, (stream) =>
        applyIncrementalTar(stream, dir, archive.key, options),
      );
      // Not in any archive, and kept until the restore completed.
      applied.seen.add(path.join(targetDir, INCOMPLETE_MARKER));
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
    await writeManifest(repository, last.manifest, targetDir);
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

/**
 * The main data directory's archive may hold its tablespaces' `pg_tblspc/<oid>` links (no other
 * may), and its PG_VERSION and global/pg_control are held back until the restore completed.
 */
function extractOptions(
  backup: BackupRecord,
  archive: ArchiveObject,
): { tablespaces?: ReadonlySet<string>; heldBack?: ReadonlyMap<string, string> } {
  if (archive.tablespace) return {};
  return {
    tablespaces: new Set(backup.archives.flatMap((a) => (a.tablespace ? [a.tablespace.oid] : []))),
    heldBack: HELD_BACK,
  };
}

/**
 * Reads one archive decompressed and verified against its recorded checksum. A stop destroys
 * the stream, so the extractor stops writing (and has settled) before the target is emptied.
 */
async function readArchive<T>(
  repository: Repository,
  archive: ArchiveObject,
  signal: AbortSignal | undefined,
  consume: (stream: Readable) => Promise<T>,
): Promise<T> {
  throwIfAborted(signal, 'restore');
  const compression = archive.key.endsWith('.zst') ? 'zstd' : archive.key.endsWith('.gz') ? 'gzip' : 'none';
  return consumeVerified(repository.store, archive, compression, repository.keys, async (stream) => {
    // The stop may have come while the archive was being opened: then the stream ends at once.
    const removeStopListener = onAbort(signal, () => stream.destroy(abortedError('restore')));
    try {
      return await consume(stream);
    } finally {
      removeStopListener();
    }
  });
}

/** PostgreSQL's backup_manifest beside the files, for pg_verifybackup and incremental backups. */
async function writeManifest(
  repository: Repository,
  manifest: StoredObject,
  targetDir: string,
): Promise<void> {
  const file = await openNoFollow(path.join(targetDir, 'backup_manifest'));
  await consumeVerified(repository.store, manifest, 'zstd', repository.keys, (stream) =>
    pipeline(stream, file.createWriteStream()),
  );
}

/** The timeline history files up to the plan's timeline, into pg_wal (returned). */
async function placeHistories(repository: Repository, plan: RestorePlan, targetDir: string): Promise<string> {
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
  return walDir;
}

async function placeWal(
  repository: Repository,
  plan: RestorePlan,
  targetDir: string,
  signal: AbortSignal | undefined,
): Promise<void> {
  const walDir = await placeHistories(repository, plan, targetDir);
  // Decompress the next segment while the current one is written. A read-ahead that fails
  // (corrupt segment) is reported when awaited; until then it must not count as unhandled.
  const readAhead = (record: SegmentRecord) => {
    const read = readSegment(repository, record);
    read.catch(() => undefined);
    return read;
  };
  let pending = plan.segments[0] ? readAhead(plan.segments[0]) : undefined;
  for (let i = 0; i < plan.segments.length; i += 1) {
    // A read is dropped on a stop; writes are awaited, so none lands after the target was emptied.
    const data = await abortable(pending!, signal, 'restore');
    const next = plan.segments[i + 1];
    pending = next ? readAhead(next) : undefined;
    await writeNoFollow(path.join(walDir, plan.segments[i]!.segment), data);
  }
  // Each partial under its own name: with two (one being archived), each holds its own bytes.
  for (const partial of plan.partials) {
    const raw = await abortable(readPartialOrArchived(repository, partial), signal, 'restore');
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
    return await readPartialOrArchived(repository, partial);
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
