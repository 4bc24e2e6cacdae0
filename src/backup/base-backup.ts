import type { Logger } from 'pino';
import { WardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { checkReplicationPrerequisites, serverNow } from '../postgres/preflight.ts';
import { CopyMessage, decodeBaseBackupMessage } from '../postgres/replication-messages.ts';
import { ReplicationClient, quoteLiteral } from '../postgres/replication-client.ts';
import { compressionExtension, type Compression } from '../pipeline/compression.ts';
import { encryptionRecord, type RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { ObjectSink } from '../pipeline/object-sink.ts';
import {
  backupObjects,
  backupPrefix,
  commitBackup,
  listBackups,
  newBackupId,
  type ArchiveObject,
  type BackupRecord,
  type StoredObject,
} from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { acquireLock, type LockLease } from '../repository/repository-lock.ts';
import { abortedError, throwIfAborted } from '../util/abort.ts';
import { StepRecorder, type StepReport } from '../util/step-recorder.ts';
import { parseLsn, parseSegmentSize } from '../wal/lsn.ts';
import { elapsedMs, eventError, subjectOf, type ObservedOptions } from '../events/observed.ts';
import { ensureWalArchived, planBackupWal, type BackupWalSource } from './wal-coverage.ts';
import { primaryIdentity } from './standby-source.ts';
import { DEFAULT_BACKUP_FROM, type BackupFrom } from './backup-from.ts';
import { chooseBackupSource, type ChosenSource } from './backup-source.ts';
import { incrementalBasis } from './incremental-basis.ts';
import {
  incrementalUnavailable,
  planIncremental,
  type IncrementalBase,
  type IncrementalMode,
} from './incremental-plan.ts';

export interface BackupOptions extends ObservedOptions {
  /** The primary: preflight, the WAL source (stream, slot) and the clock. */
  connection: ConnectionConfig;
  /**
   * Take BASE_BACKUP from this standby instead of the primary (`--from`), sparing the primary
   * the read; checked first (standby-source.ts). The backup's WAL still comes from the primary's
   * continuous stream or the repository's slot.
   */
  source?: ConnectionConfig;
  /**
   * `--from`: the primary, `standby` (the least-behind qualifying standby), a member by name or a
   * standby's URL (backup-source.ts). Ignored when `source` is given.
   */
  from?: BackupFrom;
  store: ObjectStore;
  /** `--slot`: by default the repository's own slot (see planBackupWal for how WAL is kept). */
  slotName?: string;
  compression: Compression;
  compressionLevel?: number;
  /** Let the server compress (PG15+ BASE_BACKUP COMPRESSION): spends server CPU, saves client CPU. */
  serverCompression?: boolean;
  name?: string;
  /** `recipients` to encrypt every object to (age); none: stored unencrypted. */
  keys?: RepositoryKeys;
  logger?: Logger;
  signal?: AbortSignal;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  /**
   * Incremental backup (PostgreSQL 17+, summarize_wal on) on the newest backup of this cluster:
   * `require` fails with WARDEN_E_INCREMENTAL_UNAVAILABLE when none can be taken, `prefer`
   * takes a full backup instead and says why in `fallback`.
   */
  incremental?: IncrementalMode;
  /** Oldest server_version_num to take incrementals from (default 170001). */
  minIncrementalVersion?: number;
}

export interface BackupReport {
  backup: BackupRecord;
  steps: StepReport[];
  /** Why an incremental backup was asked for (`prefer`) but a full one taken. */
  fallback?: string;
}

/**
 * Takes a physical base backup over the replication protocol (no pg_basebackup), full or
 * incremental on an earlier one (PostgreSQL 17 UPLOAD_MANIFEST + BASE_BACKUP INCREMENTAL), streams
 * each tar archive through compression and SHA-256 into the repository, stores PostgreSQL's
 * backup_manifest, makes sure the WAL from start to end LSN is archived, and only then writes
 * the commit marker. Any failure removes what this attempt wrote.
 */
export async function takeBackup(options: BackupOptions): Promise<BackupReport> {
  const events = options.events;
  if (!events) return backUp(options);
  const subject = subjectOf(options, options.store);
  const requested = options.incremental ? 'incremental' : 'full';
  const started = performance.now();
  events.emit('backup.started', { ...subject, kind: requested, at: new Date().toISOString() });
  try {
    const report = await backUp(options);
    const { backup } = report;
    events.emit('backup.succeeded', {
      ...subject,
      kind: backup.kind,
      id: backup.id,
      at: new Date().toISOString(),
      durationMs: elapsedMs(started),
      dataBytes: backup.archives.reduce((sum, archive) => sum + archive.rawSize, 0),
      storedBytes: [backup.manifest, ...backup.archives].reduce((sum, object) => sum + object.size, 0),
    });
    return report;
  } catch (error) {
    events.emit('backup.failed', {
      ...subject,
      kind: requested,
      at: new Date().toISOString(),
      durationMs: elapsedMs(started),
      error: eventError(error),
    });
    throw error;
  }
}

async function backUp(options: BackupOptions): Promise<BackupReport> {
  const logger = options.logger ?? silentLogger;
  const steps = new StepRecorder();
  const facts = await steps.run('preflight', () => checkReplicationPrerequisites(options.connection));
  const from: BackupFrom = options.source
    ? { kind: 'url', connection: options.source }
    : (options.from ?? DEFAULT_BACKUP_FROM);
  const chosen =
    from.kind === 'primary'
      ? { origin: { role: 'primary' as const } }
      : await steps.run(
          'check standby',
          () => chooseBackupSource(options.connection, from, logger),
          describeChosen,
        );
  const standby = chosen.connection;
  const backupServer = standby ?? options.connection;
  let client = await ReplicationClient.connect(backupServer);
  const onAbort = () => client.destroy();
  let lock: LockLease | undefined;
  let prefix: string | undefined;
  let walSource: BackupWalSource | undefined;
  // The repository handle is the one way to the store; this copy is for the cleanup below.
  let store: ObjectStore | undefined;
  try {
    const identity = await client.identifySystem();
    const repository = await Repository.openFor(
      options.store,
      {
        systemId: identity.systemId,
        walSegmentSize: parseSegmentSize(await client.show('wal_segment_size')),
        serverVersion: await client.show('server_version'),
      },
      options.keys,
      options.slotName,
    );
    store = repository.store;
    lock = await acquireLock(repository.store, 'backup', 'base backup');
    // Another process took the lock over (this one was paused or cut off): stop streaming now.
    lock.signal.addEventListener('abort', () => client.destroy(), { once: true });
    // Stopped (Ctrl-C): the same, even while the server sends nothing.
    options.signal?.addEventListener('abort', onAbort, { once: true });
    throwIfAborted(options.signal, 'backup');
    await removeUnfinishedBackups(repository, logger);
    // Decided before BASE_BACKUP: the stream's slot, the repository's own idle slot or a
    // temporary one makes the server keep the backup's WAL from its start on.
    walSource = await steps.run(
      'reserve WAL',
      () =>
        planBackupWal({
          connection: options.connection,
          repository: repository,
          ...(options.slotName !== undefined ? { slotName: options.slotName } : {}),
          logger,
        }),
      (source) =>
        source.kind === 'stream' ? 'the running WAL stream' : `${source.kind} slot ${source.name}`,
    );
    if (standby && walSource.kind === 'temporary')
      throw new WardenError(
        'WARDEN_E_USAGE',
        'a backup from a standby needs the repository’s continuous WAL',
        {
          hint: 'Start the WAL stream (`warden wal stream` or the daemon) first: a standby’s backup starts at its last restartpoint, older than anything a new temporary slot on the primary keeps.',
        },
      );

    let base: IncrementalBase | undefined;
    let fallback: string | undefined;
    if (options.incremental) {
      const planned = await steps.run(
        'choose parent',
        () => planIncremental(repository, facts, identity, options.minIncrementalVersion),
        (result) => ('parent' in result ? `incremental on ${result.parent.id}` : result.message),
      );
      if ('parent' in planned) base = planned;
      else if (options.incremental === 'require')
        throw incrementalUnavailable(planned.blocker, planned.message);
      else fallback = planned.message;
    }

    const existing = new Set((await listBackups(repository)).map((record) => record.id));
    const startTime = await serverNow(options.connection);
    let id = newBackupId(startTime, existing, base ? 'incremental' : 'full');
    prefix = backupPrefix(id);
    const started = performance.now();
    const streamSettings: StreamSettings = {
      compression: options.compression,
      ...(options.compressionLevel !== undefined ? { compressionLevel: options.compressionLevel } : {}),
      serverCompression: options.serverCompression === true,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    };
    const streamStep = (parent: IncrementalBase | undefined) =>
      steps.run(
        parent ? 'stream incremental backup' : 'stream base backup',
        () => streamBaseBackup(client, repository, prefix!, id, streamSettings, parent),
        (result) =>
          `${result.archives.length} archive(s), ${result.archives.reduce((n, a) => n + a.rawSize, 0)} bytes`,
      );
    let streamed: StreamedBackup;
    try {
      streamed = await streamStep(base);
    } catch (error) {
      // The server checks its WAL summaries only once asked (they may not reach back to the parent).
      const refused = base !== undefined && (error as WardenError).code === 'WARDEN_E_SERVER_ERROR';
      if (!refused) throw error;
      const message = `the server cannot take an incremental backup on ${base!.parent.id}: ${(error as Error).message}`;
      if (options.incremental === 'require') throw incrementalUnavailable('server-refused', message);
      fallback = message;
      base = undefined;
      await repository.store.delete(prefix).catch(() => undefined);
      client.destroy();
      client = await ReplicationClient.connect(backupServer);
      id = newBackupId(startTime, existing, 'full');
      prefix = backupPrefix(id);
      streamed = await streamStep(undefined);
    }
    if (fallback) logger.warn({ id, reason: fallback }, 'full backup taken instead of an incremental one');
    await client.close();
    if (standby) {
      // A failover during the backup: the standby's backup would end on an abandoned timeline.
      const now = await primaryIdentity(options.connection);
      if (now.timeline !== streamed.timeline)
        throw new WardenError(
          'WARDEN_E_STANDBY_NOT_STREAMING',
          `the backup ended on timeline ${streamed.timeline}, the primary is now on ${now.timeline}`,
          { details: { backupTimeline: streamed.timeline, primaryTimeline: now.timeline } },
        );
    }
    const endTime = await serverNow(options.connection);
    // PostgreSQL 17+: what a later incremental backup uploads, readable without a key.
    const basis =
      facts.serverVersionNum >= 170000
        ? await steps.run('store incremental basis', () =>
            storeIncrementalBasis(
              repository,
              `${prefix!}incremental-basis.zst`,
              streamed.manifestData,
              options.signal,
            ),
          )
        : undefined;
    await steps.run('archive WAL to end of backup', () =>
      ensureWalArchived({
        connection: options.connection,
        source: walSource!,
        repository: repository,
        endLsn: parseLsn(streamed.endLsn),
        logger,
        ...(options.signal ? { signal: options.signal } : {}),
      }),
    );
    const record: BackupRecord = {
      format: 1,
      id,
      ...(options.name ? { name: options.name } : {}),
      kind: base ? 'incremental' : 'full',
      ...(base ? { parent: base.parent.id } : {}),
      systemId: identity.systemId,
      timeline: streamed.timeline,
      startLsn: streamed.startLsn,
      endLsn: streamed.endLsn,
      startTime: startTime.toISOString(),
      endTime: endTime.toISOString(),
      serverVersion: repository.meta.serverVersion,
      compression: options.compression,
      compressedOn: options.serverCompression ? 'server' : 'client',
      archives: streamed.archives,
      manifest: streamed.manifest,
      ...(basis ? { incrementalBasis: basis } : {}),
      ...(repository.keys.recipients?.length
        ? { encryption: encryptionRecord(repository.keys.recipients) }
        : {}),
      durationMs: Math.round(performance.now() - started),
      takenFrom: chosen.origin,
    };
    // A size check of each object (one stat each), not a read of its content: named for what it
    // does, so "0 ms" next to it does not read as a verification that did nothing.
    await steps.run(
      'check stored sizes',
      () => verifyStoredSizes(repository.store, record),
      (count) => `${count} object(s) present with their sizes (\`warden verify\` reads the content)`,
    );
    await steps.run('commit', () => {
      lock!.assertHeld();
      // The WAL catch-up returns when stopped, so a stop during it shows here, not as an error.
      throwIfAborted(options.signal, 'backup');
      return commitBackup(repository, record);
    });
    logger.info(
      { id, kind: record.kind, parent: record.parent, startLsn: record.startLsn, endLsn: record.endLsn },
      'backup committed',
    );
    return { backup: record, steps: steps.steps, ...(fallback ? { fallback } : {}) };
  } catch (error) {
    if (prefix) await store?.delete(prefix).catch(() => undefined);
    if (lock?.signal.aborted) throw lock.signal.reason;
    throw options.signal?.aborted ? abortedError('backup', error) : error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    await client.close();
    // A temporary slot goes with its connection.
    if (walSource?.kind === 'temporary') await walSource.client.close();
    await lock?.release();
  }
}

/** The `check standby` step's detail: which server, and how far behind it was. */
function describeChosen(chosen: ChosenSource): string {
  const { origin } = chosen;
  if (origin.role === 'primary')
    return `no standby qualified, the primary instead (${origin.fallback ?? ''})`;
  const where = `${origin.host}:${origin.port}`;
  const name = origin.member && origin.member !== where ? `${origin.member} (${where})` : where;
  const lag = origin.replayLagBytes !== undefined ? `, ${origin.replayLagBytes} bytes behind` : '';
  return `${name} streaming on timeline ${chosen.timeline}${lag}`;
}

interface StreamedBackup {
  startLsn: string;
  endLsn: string;
  timeline: number;
  archives: ArchiveObject[];
  manifest: StoredObject;
  /** backup_manifest as received (for the incremental basis). */
  manifestData: Buffer;
}

/** What streaming the archives needs of the backup's options. */
interface StreamSettings {
  compression: Compression;
  compressionLevel?: number;
  serverCompression: boolean;
  signal?: AbortSignal;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

async function streamBaseBackup(
  client: ReplicationClient,
  repository: Repository,
  prefix: string,
  id: string,
  options: StreamSettings,
  base: IncrementalBase | undefined,
): Promise<StreamedBackup> {
  // The manifest goes up on the same connection, right before the BASE_BACKUP that uses it.
  if (base) await client.uploadManifest(base.manifest);
  const serverCompressed = options.serverCompression && options.compression !== 'none';
  const parts = [
    `LABEL ${quoteLiteral(`warden ${id}`)}`,
    'PROGRESS',
    "CHECKPOINT 'fast'",
    'WAL false',
    "MANIFEST 'yes'",
    "MANIFEST_CHECKSUMS 'CRC32C'",
    'TABLESPACE_MAP',
    ...(base ? ['INCREMENTAL'] : []),
  ];
  if (serverCompressed) {
    parts.push(`COMPRESSION ${quoteLiteral(options.compression)}`);
    if (options.compressionLevel !== undefined)
      parts.push(`COMPRESSION_DETAIL ${quoteLiteral(`level=${options.compressionLevel}`)}`);
  }
  const command = client.stream(`BASE_BACKUP (${parts.join(', ')})`, {
    coalesceType: CopyMessage.ArchiveData,
  });
  const archives: ArchiveObject[] = [];
  const tablespaces = new Map<string, string>();
  let manifest: StoredObject | undefined;
  let resultSet = 0;
  let columnsSeen = false;
  let startLsn = '';
  let endLsn = '';
  let timeline = 0;
  let totalBytes = 0;
  let sink: ObjectSink | undefined;
  let current: Omit<ArchiveObject, keyof StoredObject> | undefined;

  const manifestChunks: Buffer[] = [];
  let inManifest = false;
  const closeSink = async () => {
    if (!sink) return;
    const stored = await sink.finish();
    if (current) archives.push({ ...stored, ...current });
    else manifest = stored;
    sink = undefined;
    current = undefined;
  };

  try {
    for await (const event of command.events) {
      if (event.kind === 'columns') {
        resultSet += columnsSeen ? 1 : 0;
        columnsSeen = true;
      } else if (event.kind === 'row') {
        if (resultSet === 0) {
          startLsn = event.values[0] ?? '';
          timeline = Number(event.values[1]);
        } else if (resultSet === 1) {
          tablespaces.set(event.values[0] ?? '', event.values[1] ?? '');
          totalBytes += Number(event.values[2] ?? 0) * 1024;
        } else {
          endLsn = event.values[0] ?? '';
        }
      } else if (event.kind === 'copy-data') {
        const message = decodeBaseBackupMessage(event.data);
        if (message.kind === 'archive-data') {
          // A copy first: the sink may take the (pooled) block over.
          if (inManifest) manifestChunks.push(Buffer.from(message.payload));
          await sink!.write(message.payload);
        } else if (message.kind === 'progress') {
          options.onProgress?.(message.doneBytes, totalBytes);
        } else if (message.kind === 'new-archive') {
          await closeSink();
          const { name: archiveName, location } = message;
          const archive = serverCompressed
            ? archiveName
            : `${archiveName}${compressionExtension(options.compression)}`;
          const oid = /^(\d+)\.tar/.exec(archiveName)?.[1];
          current = {
            archive: archiveName,
            compression: options.compression,
            ...(oid && location ? { tablespace: { oid, location } } : {}),
          };
          const level = serverCompressed ? undefined : options.compressionLevel;
          sink = new ObjectSink(
            repository.store,
            `${prefix}${archive}`,
            serverCompressed ? 'none' : options.compression,
            level,
            options.signal,
            repository.keys.recipients,
          );
        } else if (message.kind === 'manifest') {
          await closeSink();
          inManifest = true;
          sink = new ObjectSink(
            repository.store,
            `${prefix}backup_manifest.zst`,
            'zstd',
            3,
            options.signal,
            repository.keys.recipients,
          );
        }
      }
      if (options.signal?.aborted) throw new WardenError('WARDEN_E_ABORTED', 'backup cancelled');
    }
    await closeSink();
  } catch (error) {
    client.destroy();
    // Until the store gave the object up (its temp file removed), the prefix is not ours to delete.
    await sink?.abandon(error as Error);
    throw error;
  }
  if (!manifest || !startLsn || !endLsn || archives.length === 0) {
    throw new WardenError(
      'WARDEN_E_PROTOCOL',
      'BASE_BACKUP ended without archives, manifest or end position',
    );
  }
  return { startLsn, endLsn, timeline, archives, manifest, manifestData: Buffer.concat(manifestChunks) };
}

/** Before committing, check every object the record names is there with its recorded size. */
async function verifyStoredSizes(store: ObjectStore, record: BackupRecord): Promise<number> {
  const objects = backupObjects(record);
  // All at once: on an object store each is a round trip (a HeadObject).
  const stored = await Promise.all(objects.map((object) => store.stat(object.key)));
  for (const [index, object] of objects.entries()) {
    const info = stored[index];
    if (!info || info.size !== object.size) {
      throw new WardenError(
        'WARDEN_E_REPO_CORRUPT',
        `object ${object.key} is not durable with its expected size`,
        {
          details: { object: object.key, expected: object.size, actual: info?.size },
        },
      );
    }
  }
  return objects.length;
}

async function storeIncrementalBasis(
  repository: Repository,
  key: string,
  manifest: Buffer,
  signal: AbortSignal | undefined,
): Promise<StoredObject> {
  const sink = new ObjectSink(repository.store, key, 'zstd', 3, signal, undefined);
  try {
    await sink.write(incrementalBasis(manifest));
    return await sink.finish();
  } catch (error) {
    await sink.abandon(error as Error);
    throw error;
  }
}

/** Backup directories without a commit marker are attempts that died (crash, SIGKILL). */
async function removeUnfinishedBackups(repository: Repository, logger: Logger): Promise<void> {
  const keys = await repository.store.list('backups/', { includeIncomplete: true });
  const dirs = new Set(keys.map((key) => key.split('/').slice(0, 2).join('/')));
  for (const dir of dirs) {
    if (!keys.includes(`${dir}/backup.json`)) {
      logger.warn({ dir }, 'removing unfinished backup');
      await repository.store.delete(`${dir}/`);
    }
  }
  // One killed before its first object was created: nothing above lists it.
  for (const dir of (await repository.store.listEmptyDirectories?.('backups/')) ?? []) {
    logger.warn({ dir }, 'removing empty backup directory');
    await repository.store.removeEmptyDirectory?.(dir);
  }
}
