import { spawn } from 'node:child_process';
import { elapsedMs, eventError, subjectOf, type ObservedOptions } from '../events/observed.ts';
import { once } from 'node:events';
import type { Logger } from 'pino';
import { WardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import type { Compression } from '../pipeline/compression.ts';
import { compressionExtension } from '../pipeline/compression.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { ObjectSink } from '../pipeline/object-sink.ts';
import { assertToolNewEnough, collectTail, findClientTool, libpqEnv } from '../postgres/client-tool.ts';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { commitDump, dumpPrefix, listDumps, newDumpId, type DumpRecord } from '../repository/dump-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { StepRecorder, type StepReport } from '../util/step-recorder.ts';
import { parseSegmentSize } from '../wal/lsn.ts';
import { onAbort } from '../util/abort.ts';

export interface DumpOptions extends ObservedOptions {
  /** The cluster; `database` says which of its databases to dump. */
  connection: ConnectionConfig;
  database: string;
  store: ObjectStore;
  compression?: Compression;
  logger?: Logger;
  signal?: AbortSignal;
  /** Where WARDEN_PG_BINDIR and PATH come from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Recipients to encrypt the dump to (as for backups). */
  keys?: RepositoryKeys;
}

export interface DumpReport {
  dump: DumpRecord;
  steps: StepReport[];
}

interface ServerInfo {
  systemId: string;
  walSegmentSize: number;
  serverVersion: string;
  serverVersionNum: number;
}

/**
 * Runs `pg_dump --format=custom` for one database and streams its output through the same
 * checksum/compression pipeline as base backups into `dumps/<id>/`, then writes `dump.json`
 * last. pg_dump's own compression is off (`--compress=0`): Warden compresses once, with a
 * checksummed zstd frame, and later encrypts the same bytes. A failed or cancelled dump
 * leaves nothing committed and removes what it wrote.
 *
 * @example
 * const { dump } = await takeDump({ connection, database: 'waqiti', store });
 */
export async function takeDump(options: DumpOptions): Promise<DumpReport> {
  const events = options.events;
  if (!events) return dump(options);
  const subject = subjectOf(options, options.store);
  const started = performance.now();
  events.emit('backup.started', { ...subject, kind: 'dump', at: new Date().toISOString() });
  try {
    const report = await dump(options);
    events.emit('backup.succeeded', {
      ...subject,
      kind: 'dump',
      id: report.dump.id,
      at: new Date().toISOString(),
      durationMs: elapsedMs(started),
      dataBytes: report.dump.object.rawSize,
      storedBytes: report.dump.object.size,
    });
    return report;
  } catch (error) {
    const failure = {
      at: new Date().toISOString(),
      durationMs: elapsedMs(started),
      error: eventError(error),
    };
    events.emit('backup.failed', { ...subject, kind: 'dump', ...failure });
    throw error;
  }
}

async function dump(options: DumpOptions): Promise<DumpReport> {
  const logger = options.logger ?? silentLogger;
  const env = options.env ?? process.env;
  const compression = options.compression ?? 'zstd';
  const steps = new StepRecorder();
  const connection = { ...options.connection, database: options.database };
  const server = await steps.run(
    'connect',
    () => readServerInfo(connection),
    (s) => `PostgreSQL ${s.serverVersion}`,
  );
  const tool = await steps.run(
    'find pg_dump',
    async () => {
      const found = await findClientTool('pg_dump', env);
      assertToolNewEnough(found, server.serverVersionNum);
      return found;
    },
    (t) => t.path,
  );
  const repository = await Repository.openFor(options.store, server, options.keys);
  const startTime = new Date();
  const id = newDumpId(startTime, new Set((await listDumps(repository)).map((d) => d.id)));
  const key = `${dumpPrefix(id)}${safeName(options.database)}.dump${compressionExtension(compression)}`;
  const object = await steps.run(
    'pg_dump',
    async () => {
      try {
        return await runDump(
          tool.path,
          tool.major,
          connection,
          env,
          options.store,
          key,
          compression,
          options.signal,
          options.keys,
        );
      } catch (error) {
        await removeAttempt(options.store, id);
        throw error;
      }
    },
    (o) => `${o.rawSize} bytes -> ${o.size} stored`,
  );
  const endTime = new Date();
  const record: DumpRecord = {
    format: 1,
    id,
    kind: 'logical',
    database: options.database,
    systemId: server.systemId,
    serverVersion: server.serverVersion,
    serverVersionNum: server.serverVersionNum,
    pgDumpVersion: tool.version,
    dumpFormat: 'custom',
    compression,
    object,
    startTime: startTime.toISOString(),
    endTime: endTime.toISOString(),
    durationMs: endTime.getTime() - startTime.getTime(),
  };
  await steps.run('commit', () => commitDump(repository, record));
  logger.info({ dump: id, database: options.database, bytes: object.rawSize }, 'dump committed');
  return { dump: record, steps: steps.steps };
}

async function readServerInfo(connection: ConnectionConfig): Promise<ServerInfo> {
  const client = await connect(connection);
  try {
    const { rows } = await client.query<{ num: number; version: string; seg: string; sysid: string }>(
      `SELECT current_setting('server_version_num')::int AS num,
              current_setting('server_version') AS version,
              current_setting('wal_segment_size') AS seg,
              (SELECT system_identifier::text FROM pg_control_system()) AS sysid`,
    );
    const row = rows[0]!;
    return {
      systemId: row.sysid,
      walSegmentSize: parseSegmentSize(row.seg),
      serverVersion: row.version,
      serverVersionNum: row.num,
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Keeps database names readable in keys without letting them shape the key. */
function safeName(database: string): string {
  return database.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 63) || 'database';
}

async function runDump(
  file: string,
  toolMajor: number,
  connection: ConnectionConfig,
  env: NodeJS.ProcessEnv,
  store: ObjectStore,
  key: string,
  compression: Compression,
  signal?: AbortSignal,
  keys?: RepositoryKeys,
) {
  const child = spawn(
    file,
    ['--format=custom', '--compress=0', '--no-password', `--dbname=${connection.database}`],
    { env: await libpqEnv(connection, env, toolMajor), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stderr = collectTail(child);
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  const removeStopListener = onAbort(signal, () => child.kill('SIGTERM'));
  const sink = new ObjectSink(store, key, compression, undefined, signal, keys?.recipients);
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) await sink.write(chunk);
    const [code, killedBy] = await exited;
    if (signal?.aborted) throw new WardenError('WARDEN_E_ABORTED', 'dump cancelled');
    if (code !== 0) {
      throw new WardenError(
        'WARDEN_E_DUMP_FAILED',
        `pg_dump of ${connection.database} failed (${code ?? killedBy})`,
        {
          details: { database: connection.database, exitCode: code, signal: killedBy, stderr: stderr() },
        },
      );
    }
    return await sink.finish();
  } catch (error) {
    child.kill('SIGKILL');
    sink.abort(error as Error);
    await sink.finish().catch(() => undefined);
    throw error;
  } finally {
    removeStopListener();
  }
}

/** Removes the attempt's directory with whatever is in it (an empty one would stay forever). */
async function removeAttempt(store: ObjectStore, id: string): Promise<void> {
  await store.delete(dumpPrefix(id)).catch(() => undefined);
}
