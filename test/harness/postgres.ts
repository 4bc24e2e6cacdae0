import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { findServerBinaries } from '../../src/postgres/server-binaries.ts';
import { serverRunAs } from '../../src/postgres/os-user.ts';
import { freePort } from '../../src/util/free-port.ts';
import { onExit } from './cleanup.ts';

export interface TestCluster {
  readonly instance: LocalInstance;
  readonly port: number;
  readonly host: string;
  readonly password: string;
  /** Parent temp directory; everything of this cluster lives below it. */
  readonly workDir: string;
  /** Connection URL for the superuser `postgres` (database `postgres` unless given). */
  url(options?: { user?: string; password?: string; database?: string }): string;
  /** Runs SQL as the superuser and returns the rows. */
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  stop(): Promise<void>;
}

export interface StartClusterOptions {
  settings?: Record<string, string | number>;
  hbaLines?: string[];
  /** Server major version (default: whatever findServerBinaries() picks, the system's 15 here). */
  major?: number;
}

/**
 * Starts a throwaway PostgreSQL cluster (initdb + pg_ctl) on a free loopback port in a temp
 * directory, as an unprivileged user when running as root. Replication is enabled by default;
 * `stop()` (or process exit) removes everything.
 */
export async function startCluster(options: StartClusterOptions = {}): Promise<TestCluster> {
  const binaries = await findServerBinaries(
    process.env,
    options.major !== undefined ? { major: options.major } : {},
  );
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'warden-pg-'));
  let port = await freePort();
  const password = randomBytes(12).toString('hex');
  const runAs = serverRunAs();
  if (runAs) await chown(workDir, runAs.uid, runAs.gid);
  let instance = new LocalInstance({ binaries, dataDir: path.join(workDir, 'data'), port, runAs });
  const settings = {
    wal_level: 'replica',
    max_wal_senders: 10,
    max_replication_slots: 10,
    fsync: 'off',
    synchronous_commit: 'on',
    shared_buffers: '32MB',
    max_connections: 60,
    wal_keep_size: '64MB',
    ...options.settings,
  };
  const hbaLines = [
    ...(options.hbaLines ?? []),
    'host all all 127.0.0.1/32 scram-sha-256',
    'host replication all 127.0.0.1/32 scram-sha-256',
  ];
  const removeHook = onExit(() => {
    // 'exit' handlers must be synchronous
    try {
      execFileSync(
        path.join(binaries.bindir, 'pg_ctl'),
        ['stop', '-m', 'immediate', '-D', instance.dataDir],
        {
          stdio: 'ignore',
          ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
        },
      );
    } catch {
      // already stopped
    }
    rmSync(workDir, { recursive: true, force: true });
  });
  await instance.init({ superuser: 'postgres', password, settings, hbaLines });
  // A free port can be taken by another test's server between freePort() and the start: try another.
  for (let attempt = 1; ; attempt += 1) {
    try {
      await instance.start();
      break;
    } catch (error) {
      if (attempt >= 4 || !(await instance.logTail()).includes('Address already in use')) throw error;
      port = await freePort();
      instance = new LocalInstance({ binaries, dataDir: instance.dataDir, port, runAs });
    }
  }
  const host = '127.0.0.1';
  const url = (o: { user?: string; password?: string; database?: string } = {}) =>
    `postgres://${encodeURIComponent(o.user ?? 'postgres')}:${encodeURIComponent(o.password ?? password)}@${host}:${port}/${o.database ?? 'postgres'}`;
  return {
    instance,
    port,
    host,
    password,
    workDir,
    url,
    async query(sql, params) {
      const client = new pg.Client({ connectionString: url() });
      await client.connect();
      try {
        return (await client.query(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    async stop() {
      removeHook();
      await instance.stop({ mode: 'immediate' });
      await rm(workDir, { recursive: true, force: true });
    },
  };
}

/** Runs `fn` with a connected client and always closes it. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
