import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { findServerBinaries } from '../../src/postgres/server-binaries.ts';
import { serverRunAs } from '../../src/postgres/os-user.ts';
import { freePort } from '../../src/util/free-port.ts';
import { onExit } from './cleanup.ts';
import { startEtcd, type TestEtcd } from './etcd.ts';
import { TEMP_PREFIX } from './temp-dir.ts';

/** One Patroni-managed PostgreSQL member. */
export interface PatroniMember {
  /** Patroni member name (`node1`, `node2`, …); also its `application_name` on the primary. */
  readonly name: string;
  readonly pgPort: number;
  readonly restPort: number;
  /** Patroni REST base URL, e.g. `http://127.0.0.1:8008`. */
  readonly restUrl: string;
  readonly dataDir: string;
  /** Superuser (`postgres`) URL of this member alone. */
  url(options?: { database?: string }): string;
  /** PID of the running Patroni process (undefined while stopped/killed). */
  patroniPid(): number | undefined;
  /** PID of the postmaster from postmaster.pid (undefined when not running). */
  postmasterPid(): number | undefined;
  /** Last ~6 KB of the member's Patroni log (PostgreSQL logs go to `dataDir/log`). */
  logTail(): string;
}

/** Patroni's `GET /cluster` member entry (the fields the tests use). */
export interface PatroniClusterMember {
  name: string;
  role: 'leader' | 'replica' | 'sync_standby' | 'standby_leader' | string;
  state: string;
  host: string;
  port: number;
  api_url?: string;
  timeline?: number;
  lag?: number | string;
}

export interface PatroniCluster {
  readonly members: readonly PatroniMember[];
  /** Patroni `scope` (cluster name). */
  readonly scope: string;
  readonly etcd: TestEtcd;
  /** Superuser password (user `postgres`). */
  readonly password: string;
  /** Replication user `replicator` and its password (Patroni's own replication). */
  readonly replication: { readonly user: string; readonly password: string };
  /** Parent temp dir (owned by the server OS user when root), removed by `stop()`. */
  readonly workDir: string;
  /** REST base URLs of every member, for `patroni: { urls }`. */
  restUrls(): string[];
  /** `postgres://postgres:pw@127.0.0.1:p1,127.0.0.1:p2,…/db?target_session_attrs=…` */
  multiHostUrl(options?: { database?: string; targetSessionAttrs?: string }): string;
  member(name: string): PatroniMember;
  /** `GET /cluster` from the first member that answers. */
  clusterState(): Promise<{ members: PatroniClusterMember[] }>;
  /** The current leader per Patroni (waits up to `timeoutMs` for one to exist and accept writes). */
  leader(timeoutMs?: number): Promise<PatroniMember>;
  /** Waits until a leader other than `notName` runs and accepts writes. */
  waitForNewLeader(notName: string, timeoutMs?: number): Promise<PatroniMember>;
  /** Waits until `count` replicas stream from the current leader (pg_stat_replication). */
  waitForReplicas(count?: number, timeoutMs?: number): Promise<void>;
  /** Patroni `POST /switchover` (candidate optional); resolves once the new leader accepts writes. */
  switchover(candidate?: string): Promise<{ from: string; to: string }>;
  /**
   * SIGKILLs the leader's Patroni and its PostgreSQL (postmaster and its children), then waits
   * for a new leader. The killed member stays down until `startMember(name)`.
   */
  killLeader(timeoutMs?: number): Promise<{ killed: string; to: string }>;
  /** SIGKILLs one member's Patroni and PostgreSQL (no wait). */
  killMember(name: string): Promise<void>;
  /** Starts a stopped/killed member's Patroni again (it rejoins, pg_rewind when needed). */
  startMember(name: string): Promise<void>;
  /** Superuser query on one member (by name) or on the current leader (`'leader'`). */
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(
    on: string,
    sql: string,
    params?: unknown[],
  ): Promise<T[]>;
  /** `PATCH /config` (dynamic configuration, e.g. `{ slots: { warden: { type: 'physical' } } }`). */
  patchConfig(patch: Record<string, unknown>): Promise<void>;
  /** Kills every process this cluster started (Patroni, PostgreSQL, etcd) and removes its files. */
  stop(): Promise<void>;
}

export interface StartPatroniOptions {
  /** Members to start (default 3). */
  members?: number;
  /** Members started at once (default all); start the rest later with `startMember`. */
  startMembers?: number;
  /** Extra PostgreSQL parameters (bootstrap DCS `postgresql.parameters`). */
  parameters?: Record<string, string | number | boolean>;
  /** Permanent slots (DCS `slots:`), e.g. `{ warden: { type: 'physical' } }`. */
  slots?: Record<string, { type: 'physical' }>;
  /** Extra DCS keys (bootstrap.dcs), deep-merged (e.g. `synchronous_mode: true`). */
  dcs?: Record<string, unknown>;
  /** Extra pg_hba lines, placed before the defaults. */
  hbaLines?: string[];
  /**
   * Per-member additions deep-merged into the generated Patroni YAML (e.g. `postgresql.
   * create_replica_methods`, `bootstrap.method`). Called with the member's name and data dir.
   */
  memberConfig?: (member: { name: string; index: number; dataDir: string }) => Record<string, unknown>;
  /** Extra environment for Patroni (and so for scripts it runs). */
  env?: Record<string, string>;
}

/**
 * Starts etcd and a Patroni cluster of PostgreSQL (the system's 15 by default) on free loopback
 * ports in one temp dir (`warden-patroni-*`). Patroni and PostgreSQL run as the `postgres` OS
 * user when the tests run as root. Light, fast settings: ttl 10 s, loop_wait 1 s,
 * retry_timeout 4 s, shared_buffers 16MB, fsync off. Member 1 bootstraps; the others clone it.
 *
 * @example
 * const cluster = await startPatroniCluster({ slots: { warden: { type: 'physical' } } });
 * const leader = await cluster.leader();
 * await cluster.switchover();
 * await cluster.stop();
 */
export async function startPatroniCluster(options: StartPatroniOptions = {}): Promise<PatroniCluster> {
  const count = options.members ?? 3;
  const binaries = await findServerBinaries(process.env, { major: 15 });
  const runAs = serverRunAs();
  const workDir = await mkdtemp(path.join(os.tmpdir(), `${TEMP_PREFIX}patroni-`));
  if (runAs) await chown(workDir, runAs.uid, runAs.gid);
  await chmod(workDir, 0o755);
  const password = randomBytes(12).toString('hex');
  const replication = { user: 'replicator', password: randomBytes(12).toString('hex') };
  const scope = `warden-${randomBytes(4).toString('hex')}`;
  const children = new Map<string, ChildProcess>();
  const members: PatroniMember[] = [];

  const killAllSync = () => {
    for (const child of children.values()) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    for (const member of members) killPostgresSync(member.dataDir);
  };
  const etcdDir = path.join(workDir, 'etcd');
  let etcd: TestEtcd;
  try {
    await mkdir(etcdDir);
    etcd = await startEtcd(etcdDir);
  } catch (error) {
    await rm(workDir, { recursive: true, force: true });
    throw error;
  }
  const removeHook = onExit(() => {
    killAllSync();
    process.kill(etcd.pid, 'SIGKILL');
    rmSync(workDir, { recursive: true, force: true });
  });

  const hba = [
    ...(options.hbaLines ?? []),
    'local all all trust',
    'host all all 127.0.0.1/32 scram-sha-256',
    'host replication all 127.0.0.1/32 scram-sha-256',
  ];
  const configPaths = new Map<string, string>();
  for (let index = 0; index < count; index += 1) {
    const name = `node${index + 1}`;
    const pgPort = await freePort();
    const restPort = await freePort();
    const memberDir = path.join(workDir, name);
    await mkdir(memberDir, { mode: 0o700 });
    if (runAs) await chown(memberDir, runAs.uid, runAs.gid);
    const dataDir = path.join(memberDir, 'data');
    const logPath = path.join(memberDir, 'patroni.log');
    const config = deepMerge(
      {
        scope,
        name,
        log: { level: 'INFO' },
        restapi: { listen: `127.0.0.1:${restPort}`, connect_address: `127.0.0.1:${restPort}` },
        etcd3: { host: etcd.hostPort },
        bootstrap: {
          dcs: deepMerge(
            {
              ttl: 10,
              loop_wait: 1,
              retry_timeout: 4,
              maximum_lag_on_failover: 64 * 1024 * 1024,
              ...(options.slots ? { slots: options.slots } : {}),
              postgresql: {
                use_pg_rewind: true,
                use_slots: true,
                parameters: {
                  wal_level: 'replica',
                  hot_standby: 'on',
                  max_wal_senders: 10,
                  max_replication_slots: 10,
                  wal_keep_size: '128MB',
                  wal_log_hints: 'on',
                  max_connections: 40,
                  ...options.parameters,
                },
              },
            },
            options.dcs ?? {},
          ),
          initdb: [{ encoding: 'UTF8' }, { locale: 'C' }],
        },
        postgresql: {
          listen: `127.0.0.1:${pgPort}`,
          connect_address: `127.0.0.1:${pgPort}`,
          data_dir: dataDir,
          bin_dir: binaries.bindir,
          pgpass: path.join(memberDir, 'pgpass'),
          authentication: {
            superuser: { username: 'postgres', password },
            replication: { username: replication.user, password: replication.password },
            rewind: { username: 'postgres', password },
          },
          parameters: {
            unix_socket_directories: memberDir,
            shared_buffers: '16MB',
            fsync: 'off',
            logging_collector: 'on',
            log_directory: 'log',
          },
          pg_hba: hba,
        },
        tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
      },
      options.memberConfig?.({ name, index, dataDir }) ?? {},
    );
    const configPath = path.join(memberDir, 'patroni.yml');
    // JSON is YAML: Patroni reads it with yaml.safe_load.
    await writeFile(configPath, JSON.stringify(config, null, 2), { mode: 0o600 });
    if (runAs) await chown(configPath, runAs.uid, runAs.gid);
    configPaths.set(name, configPath);
    const url = (o: { database?: string } = {}) =>
      `postgres://postgres:${password}@127.0.0.1:${pgPort}/${o.database ?? 'postgres'}`;
    members.push({
      name,
      pgPort,
      restPort,
      restUrl: `http://127.0.0.1:${restPort}`,
      dataDir,
      url,
      patroniPid: () => {
        const child = children.get(name);
        return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined;
      },
      postmasterPid: () => postmasterPid(dataDir),
      logTail: () => {
        try {
          return readFileSync(logPath, 'utf8').slice(-6000);
        } catch {
          return '';
        }
      },
    });
  }

  const member = (name: string): PatroniMember => {
    const found = members.find((m) => m.name === name);
    if (!found) throw new Error(`no Patroni member "${name}"`);
    return found;
  };

  const startMember = async (name: string): Promise<void> => {
    const existing = children.get(name);
    if (existing && existing.exitCode === null && existing.signalCode === null) return;
    const m = member(name);
    const logFd = openSync(path.join(path.dirname(m.dataDir), 'patroni.log'), 'a');
    if (runAs)
      execFileSync('chown', [`${runAs.uid}:${runAs.gid}`, path.join(path.dirname(m.dataDir), 'patroni.log')]);
    const child = spawn('patroni', [configPaths.get(name)!], {
      stdio: ['ignore', logFd, logFd],
      cwd: path.dirname(m.dataDir),
      env: { ...process.env, HOME: path.dirname(m.dataDir), PGPASSWORD: '', ...options.env },
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
    closeSync(logFd);
    children.set(name, child);
  };

  const query = async <T extends pg.QueryResultRow>(
    on: string,
    sql: string,
    params?: unknown[],
  ): Promise<T[]> => {
    const target = on === 'leader' ? await leader() : member(on);
    const client = new pg.Client({ connectionString: target.url() });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query<T>(sql, params)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  };

  const clusterState = async (): Promise<{ members: PatroniClusterMember[] }> => {
    let lastError: unknown;
    for (const m of members) {
      if (!m.patroniPid()) continue;
      try {
        const response = await fetch(`${m.restUrl}/cluster`, { signal: AbortSignal.timeout(3000) });
        if (response.ok) return (await response.json()) as { members: PatroniClusterMember[] };
        lastError = new Error(`${m.restUrl}/cluster: HTTP ${response.status}`);
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError ?? new Error('no Patroni member runs');
  };

  const acceptsWrites = async (m: PatroniMember): Promise<boolean> => {
    const client = new pg.Client({ connectionString: m.url(), connectionTimeoutMillis: 3000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      return rows[0]?.r === false;
    } catch {
      return false;
    } finally {
      await client.end().catch(() => undefined);
    }
  };

  const waitForLeader = async (notName: string | undefined, timeoutMs: number): Promise<PatroniMember> => {
    const deadline = Date.now() + timeoutMs;
    let last: string;
    for (;;) {
      try {
        const state = await clusterState();
        const lead = state.members.find((m) => m.role === 'leader' && m.state === 'running');
        last = JSON.stringify(state.members.map((m) => [m.name, m.role, m.state, m.timeline]));
        if (lead && lead.name !== notName) {
          const m = member(lead.name);
          if (await acceptsWrites(m)) return m;
        }
      } catch (error) {
        last = String(error);
      }
      if (Date.now() > deadline) {
        throw new Error(
          `Patroni: no ${notName ? `new leader (not ${notName})` : 'leader'} within ${timeoutMs} ms; last view ${last}`,
        );
      }
      await sleep(200);
    }
  };
  const leader = (timeoutMs = 60_000) => waitForLeader(undefined, timeoutMs);

  const waitForReplicas = async (wanted = count - 1, timeoutMs = 90_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let seen = -1;
    for (;;) {
      try {
        const rows = await query<{ n: number }>(
          'leader',
          "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming' AND application_name LIKE 'node%'",
        );
        seen = rows[0]?.n ?? 0;
        if (seen >= wanted) return;
      } catch {
        // leader changing: try again
      }
      if (Date.now() > deadline)
        throw new Error(`Patroni: ${seen}/${wanted} replicas streaming after ${timeoutMs} ms`);
      await sleep(250);
    }
  };

  const killMember = async (name: string): Promise<void> => {
    const child = children.get(name);
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    killPostgresSync(member(name).dataDir);
  };

  const stop = async (): Promise<void> => {
    removeHook();
    for (const m of members) await killMember(m.name);
    await etcd.stop();
    await rm(workDir, { recursive: true, force: true });
  };

  try {
    await startMember(members[0]!.name);
    await leader(120_000);
    const initial = Math.min(options.startMembers ?? count, count);
    for (const m of members.slice(1, initial)) await startMember(m.name);
    if (initial > 1) await waitForReplicas(initial - 1, 120_000);
  } catch (error) {
    const logs = members.map((m) => `--- ${m.name}\n${m.logTail()}`).join('\n');
    await stop();
    throw new Error(`Patroni cluster did not start: ${String(error)}\n${logs}`, { cause: error });
  }

  return {
    members,
    scope,
    etcd,
    password,
    replication,
    workDir,
    restUrls: () => members.map((m) => m.restUrl),
    multiHostUrl: (o = {}) =>
      `postgres://postgres:${password}@${members.map((m) => `127.0.0.1:${m.pgPort}`).join(',')}/${o.database ?? 'postgres'}?target_session_attrs=${o.targetSessionAttrs ?? 'read-write'}`,
    member,
    clusterState,
    leader,
    waitForNewLeader: (notName, timeoutMs = 90_000) => waitForLeader(notName, timeoutMs),
    waitForReplicas,
    async switchover(candidate) {
      const from = await leader();
      const body: Record<string, string> = { leader: from.name };
      if (candidate) body.candidate = candidate;
      // Patroni refuses a switchover until every member is healthy; retry briefly.
      const deadline = Date.now() + 60_000;
      for (;;) {
        const response = await fetch(`${from.restUrl}/switchover`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        const text = await response.text();
        if (response.ok) break;
        if (Date.now() > deadline)
          throw new Error(`Patroni switchover refused: HTTP ${response.status} ${text}`);
        await sleep(500);
      }
      const to = await waitForLeader(from.name, 90_000);
      return { from: from.name, to: to.name };
    },
    async killLeader(timeoutMs = 90_000) {
      const from = await leader();
      await killMember(from.name);
      const to = await waitForLeader(from.name, timeoutMs);
      return { killed: from.name, to: to.name };
    },
    killMember,
    startMember,
    query,
    async patchConfig(patch) {
      const from = await leader();
      const response = await fetch(`${from.restUrl}/config`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(patch),
      });
      if (!response.ok)
        throw new Error(`Patroni PATCH /config: HTTP ${response.status} ${await response.text()}`);
    },
    stop,
  };
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/**
 * SIGKILLs the postmaster of `dataDir` (from its postmaster.pid, checked to be a postgres
 * process whose cwd is this data dir) and its children, so nothing of a "killed" member
 * keeps running. Only processes of our own data dir are touched.
 */
function killPostgresSync(dataDir: string): void {
  const pid = postmasterPid(dataDir);
  if (!pid) return;
  let cwd: string;
  try {
    cwd = readlinkCwd(pid);
  } catch {
    return;
  }
  if (path.resolve(cwd) !== path.resolve(dataDir)) return;
  const kids = childrenOf(pid);
  for (const p of [pid, ...kids]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

function readlinkCwd(pid: number): string {
  return execFileSync('readlink', [`/proc/${pid}/cwd`], { encoding: 'utf8' }).trim();
}

function childrenOf(parent: number): number[] {
  const result: number[] = [];
  if (!existsSync('/proc')) return result;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) result.push(Number(entry));
    } catch {
      // process ended while we looked
    }
  }
  return result;
}

function deepMerge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
