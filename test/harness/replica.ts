import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { serverRunAs } from '../../src/postgres/os-user.ts';
import { freePort } from '../../src/util/free-port.ts';
import { onExit } from './cleanup.ts';
import { startCluster, type StartClusterOptions, type TestCluster } from './postgres.ts';

export interface TestReplica {
  readonly instance: LocalInstance;
  readonly port: number;
  readonly host: string;
  url(options?: { database?: string }): string;
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Sets `recovery_min_apply_delay` (commits become visible this much later) and reloads. */
  setApplyDelay(ms: number): Promise<void>;
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** Waits until the replica has replayed everything the primary had written when called. */
  waitForReplay(timeoutMs?: number): Promise<void>;
  /** Turns the replica into a primary and waits until it accepts writes. */
  promote(): Promise<void>;
  /** Stops the server (immediate shutdown); its files stay for `restart()`. */
  stop(): Promise<void>;
  /** Starts it again after `stop()` (same data, same port). */
  restart(): Promise<void>;
  /** Stops it and deletes its files. */
  remove(): Promise<void>;
}

export interface PrimaryWithReplica {
  readonly primary: TestCluster;
  readonly replica: TestReplica;
  stop(): Promise<void>;
}

/**
 * Starts a harness cluster and a streaming replica of it (pg_basebackup -R, run as the server's
 * OS user) on another free port. The replica's `postgres` password is the primary's.
 */
export async function startPrimaryWithReplica(
  options: StartClusterOptions & { applyDelayMs?: number } = {},
): Promise<PrimaryWithReplica> {
  const primary = await startCluster(options);
  try {
    const replica = await startReplica(primary);
    if (options.applyDelayMs) await replica.setApplyDelay(options.applyDelayMs);
    return {
      primary,
      replica,
      async stop() {
        await replica.remove();
        await primary.stop();
      },
    };
  } catch (error) {
    await primary.stop();
    throw error;
  }
}

async function startReplica(primary: TestCluster): Promise<TestReplica> {
  const runAs = serverRunAs();
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'warden-replica-'));
  if (runAs) await chown(workDir, runAs.uid, runAs.gid);
  const port = await freePort();
  const host = '127.0.0.1';
  const instance = new LocalInstance({
    binaries: primary.instance.binaries,
    dataDir: path.join(workDir, 'data'),
    port,
    runAs,
  });
  const removeHook = onExit(() => {
    try {
      execFileSync(
        path.join(instance.binaries.bindir, 'pg_ctl'),
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
  await instance.run('pg_basebackup', [
    '-D',
    instance.dataDir,
    '-R',
    '-X',
    'stream',
    '-c',
    'fast',
    '-d',
    primary.url(),
  ]);
  await instance.start();
  const url = (o: { database?: string } = {}) =>
    `postgres://postgres:${encodeURIComponent(primary.password)}@${host}:${port}/${o.database ?? 'postgres'}`;
  const query = async <T extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]> => {
    const client = new pg.Client({ connectionString: url() });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query<T>(sql, params)).rows;
    } finally {
      await client.end();
    }
  };
  const waitFor = async (check: () => Promise<boolean>, timeoutMs: number, what: string) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await check().catch(() => false)) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`replica: ${what} not reached within ${timeoutMs} ms`);
  };
  await waitFor(
    async () =>
      (
        await query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_wal_receiver WHERE status = 'streaming'",
        )
      )[0]?.n === 1,
    30_000,
    'streaming',
  );
  return {
    instance,
    port,
    host,
    url,
    query,
    async setApplyDelay(ms) {
      await query(`ALTER SYSTEM SET recovery_min_apply_delay = '${Math.trunc(ms)}ms'`);
      await query('SELECT pg_reload_conf()');
      await waitFor(
        async () =>
          (await query<{ v: string }>("SELECT current_setting('recovery_min_apply_delay') AS v"))[0]?.v !==
          undefined,
        5_000,
        'reload',
      );
    },
    async pauseReplay() {
      await query('SELECT pg_wal_replay_pause()');
    },
    async resumeReplay() {
      await query('SELECT pg_wal_replay_resume()');
    },
    async waitForReplay(timeoutMs = 30_000) {
      const [row] = await primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      await waitFor(
        async () =>
          (await query<{ ok: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok', [row?.lsn]))[0]
            ?.ok === true,
        timeoutMs,
        `replay of ${row?.lsn}`,
      );
    },
    async promote() {
      await query('SELECT pg_promote(true, 60)');
      await waitFor(
        async () => (await query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r'))[0]?.r === false,
        60_000,
        'promotion',
      );
    },
    async stop() {
      await instance.stop({ mode: 'immediate' });
    },
    async restart() {
      await instance.start();
    },
    async remove() {
      removeHook();
      await instance.stop({ mode: 'immediate' });
      await rm(workDir, { recursive: true, force: true });
    },
  };
}
