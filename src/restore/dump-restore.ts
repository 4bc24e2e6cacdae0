import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { WardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import { assertToolNewEnough, collectTail, findClientTool, libpqEnv } from '../postgres/client-tool.ts';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { getDump } from '../repository/dump-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { StepRecorder, type StepReport } from '../util/step-recorder.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { readVerified } from '../pipeline/object-source.ts';
import { onAbort } from '../util/abort.ts';

export interface DumpRestoreOptions {
  /** The cluster to restore into (any database of it to connect to for CREATE DATABASE). */
  connection: ConnectionConfig;
  store: ObjectStore;
  dumpId: string;
  /** A new database; an existing one is refused. */
  targetDatabase: string;
  logger?: Logger;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  /** Identities for an encrypted dump. */
  keys?: RepositoryKeys;
}

export interface DumpRestoreReport {
  dumpId: string;
  database: string;
  targetDatabase: string;
  restoreMs: number;
  steps: StepReport[];
}

/**
 * Restores a logical dump into a NEW database: checks pg_restore, refuses an existing target,
 * reads the first bytes of the dump (so a damaged or undecryptable dump fails before anything is
 * created), creates the database and streams the verified, decompressed dump into pg_restore.
 * On any failure — including a checksum mismatch found at the end — the new database is dropped.
 *
 * @example
 * await restoreDump({ connection, store, dumpId: '20261122-143005D', targetDatabase: 'waqiti_restored' });
 */
export async function restoreDump(options: DumpRestoreOptions): Promise<DumpRestoreReport> {
  const started = performance.now();
  const logger = options.logger ?? silentLogger;
  const env = options.env ?? process.env;
  const steps = new StepRecorder();
  const target = options.targetDatabase;
  if (!target || Buffer.byteLength(target) > 63) {
    throw new WardenError('WARDEN_E_USAGE', `--target-database: "${target}" is not a database name`, {
      hint: 'Give a new database name of 1 to 63 bytes.',
    });
  }
  const repository = await Repository.open(options.store, options.keys);
  const dump = await getDump(repository, options.dumpId);
  const client = await connect(options.connection);
  let created = false;
  try {
    await steps.run('check target', async () => {
      const { rows } = await client.query<{ exists: boolean }>(
        'SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists',
        [target],
      );
      if (rows[0]!.exists) throw databaseExists(target);
    });
    const tool = await steps.run(
      'find pg_restore',
      async () => {
        const { rows } = await client.query<{ num: number }>(
          "SELECT current_setting('server_version_num')::int AS num",
        );
        const found = await findClientTool('pg_restore', env);
        assertToolNewEnough(found, rows[0]!.num, {
          major: Number(/\(PostgreSQL\)\s+(\d+)/.exec(dump.pgDumpVersion)?.[1] ?? 0),
          what: `the pg_dump that wrote dump ${dump.id}`,
        });
        return found;
      },
      (t) => t.path,
    );
    const reader = readVerified(options.store, dump.object, dump.compression, options.keys);
    const chunks = (reader.stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const first = await steps.run('read dump', async () => {
      try {
        return await chunks.next();
      } catch (error) {
        throw reader.explain(error);
      }
    });
    await steps.run('create database', async () => {
      try {
        await client.query(`CREATE DATABASE ${quoteIdent(target)} TEMPLATE template0`);
      } catch (error) {
        if ((error as { code?: string }).code === '42P04') throw databaseExists(target);
        throw error;
      }
      created = true;
    });
    await steps.run(
      'pg_restore',
      async () => {
        const source = Readable.from(
          (async function* () {
            if (!first.done) yield first.value;
            for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
          })(),
        );
        await runRestore(
          tool.path,
          tool.major,
          { ...options.connection, database: target },
          env,
          source,
          reader,
          options.signal,
        );
      },
      () => `${dump.object.rawSize} bytes into ${target}`,
    );
    logger.info({ dump: dump.id, target }, 'dump restored');
    return {
      dumpId: dump.id,
      database: dump.database,
      targetDatabase: target,
      restoreMs: Math.round(performance.now() - started),
      steps: steps.steps,
    };
  } catch (error) {
    // Leave no half-restored database behind.
    if (created)
      await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(target)} WITH (FORCE)`).catch(() => undefined);
    throw error;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function runRestore(
  file: string,
  toolMajor: number,
  connection: ConnectionConfig,
  env: NodeJS.ProcessEnv,
  source: Readable,
  reader: ReturnType<typeof readVerified>,
  signal?: AbortSignal,
): Promise<void> {
  // The dump's bytes go to pg_restore's stdin and only into the new database: no file is
  // written by a name the repository holds. --format=custom (what Warden's pg_dump writes)
  // refuses anything else a forged dump might claim to be.
  const args = ['--format=custom', '--no-password', '--exit-on-error', `--dbname=${connection.database}`];
  const child = spawn(file, args, {
    env: await libpqEnv(connection, env, toolMajor),
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  const stderr = collectTail(child);
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  const removeStopListener = onAbort(signal, () => child.kill('SIGTERM'));
  try {
    let streamError: unknown;
    await pipeline(source, child.stdin!).catch((error: unknown) => {
      streamError = error;
    });
    const [code, killedBy] = await exited;
    if (signal?.aborted) throw new WardenError('WARDEN_E_ABORTED', 'restore cancelled');
    // The dump's bytes are checked first: a damaged dump explains whatever pg_restore said.
    if (streamError && (streamError as NodeJS.ErrnoException).code !== 'EPIPE')
      throw reader.explain(streamError);
    if (!streamError) reader.check();
    if (code !== 0) {
      throw new WardenError(
        'WARDEN_E_DUMP_FAILED',
        `pg_restore into ${connection.database} failed (${code ?? killedBy})`,
        {
          details: { database: connection.database, exitCode: code, signal: killedBy, stderr: stderr() },
        },
      );
    }
  } finally {
    removeStopListener();
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

function databaseExists(name: string): WardenError {
  return new WardenError('WARDEN_E_DATABASE_EXISTS', `database "${name}" already exists`, {
    hint: 'Restore into a new database name; Warden never restores over an existing database.',
    details: { database: name },
  });
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
