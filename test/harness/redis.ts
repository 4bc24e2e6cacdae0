import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { createRedis, type CreateRedisOptions } from '../../packages/app/src/redis/ioredis-adapter.ts';
import type { RedisLike } from '../../packages/app/src/redis/redis-like.ts';
import { freePort, portInUse } from '../../src/util/free-port.ts';
import { onExit } from './cleanup.ts';

const execFileAsync = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const HOST = '127.0.0.1';

/** Runs redis-cli against a loopback port and returns its stdout. */
export async function redisCli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('redis-cli', ['-h', HOST, '-p', String(port), ...args], {
    timeout: 30_000,
  });
  return stdout.trim();
}

interface ServerProcess {
  readonly port: number;
  child: ChildProcess | undefined;
}

function spawnServer(port: number, dir: string, extra: string[]): ChildProcess {
  const child = spawn(
    'redis-server',
    ['--save', '', '--appendonly', 'no', '--bind', HOST, '--port', String(port), '--dir', dir, ...extra],
    { stdio: 'ignore' },
  );
  child.on('error', () => {
    // reported by waitForPing
  });
  return child;
}

async function waitForPing(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await redisCli(port, 'PING')) === 'PONG') return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING`);
    await sleep(50);
  }
}

function killSync(server: ServerProcess): void {
  const pid = server.child?.pid;
  if (pid !== undefined && server.child?.exitCode === null) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

async function killAndWait(server: ServerProcess, signal: NodeJS.Signals): Promise<void> {
  const child = server.child;
  server.child = undefined;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.pid !== undefined) process.kill(child.pid, signal);
  await exited;
}

async function waitReplicasSynced(ports: readonly number[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const infos = await Promise.all(ports.map((port) => redisCli(port, 'INFO', 'replication')));
    const replicas = infos.filter((info) => info.includes('role:slave'));
    if (replicas.length === 3 && replicas.every((info) => info.includes('master_link_status:up'))) return;
    if (Date.now() > deadline) throw new Error('redis cluster replicas did not finish their first sync');
    await sleep(100);
  }
}

export interface TestRedis {
  readonly host: string;
  readonly port: number;
  /** Kills the server (SIGKILL by default: no goodbye to clients), keeping its port for restart(). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts a fresh, empty server on the same port after kill(). */
  restart(): Promise<void>;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

/**
 * Starts a throwaway standalone redis-server on a free loopback port in a temp directory. Nothing
 * survives the test process: an exit hook kills it by PID.
 */
export async function startRedis(): Promise<TestRedis> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-redis-'));
  const port = await freePort();
  const server: ServerProcess = { port, child: undefined };
  const removeHook = onExit(() => {
    killSync(server);
    rmSync(dir, { recursive: true, force: true });
  });
  const start = async () => {
    server.child = spawnServer(port, dir, []);
    await waitForPing(port);
  };
  await start();
  return {
    host: HOST,
    port,
    kill: (signal = 'SIGKILL') => killAndWait(server, signal),
    restart: start,
    async stop() {
      await killAndWait(server, 'SIGKILL');
      removeHook();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface TestRedisCluster {
  readonly host: string;
  /** All six ports (masters first after creation, but roles change on failover). */
  readonly ports: readonly number[];
  /** Seed nodes for a Cluster client. */
  readonly nodes: ReadonlyArray<{ host: string; port: number }>;
  /** Ports of the current masters, as the cluster sees them. */
  masters(): Promise<number[]>;
  /** SIGKILLs one node. */
  killNode(port: number): Promise<void>;
  /** Waits until every live node reports `cluster_state:ok` and sees `expectedMasters` masters. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

async function freeClusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port + 10_000 <= 65_535 && !(await portInUse(port + 10_000))) return port;
  }
}

/**
 * Starts a real six-node Redis Cluster (3 masters + 3 replicas) on loopback ports, with a short
 * node timeout so a killed master fails over in a few seconds.
 */
export async function startRedisCluster(): Promise<TestRedisCluster> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-redis-cluster-'));
  const ports: number[] = [];
  while (ports.length < 6) {
    const port = await freeClusterPort();
    if (!ports.includes(port)) ports.push(port);
  }
  const servers: ServerProcess[] = ports.map((port) => ({ port, child: undefined }));
  const removeHook = onExit(() => {
    for (const server of servers) killSync(server);
    rmSync(dir, { recursive: true, force: true });
  });
  for (const server of servers) {
    server.child = spawnServer(server.port, dir, [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      path.join(dir, `nodes-${server.port}.conf`),
      '--cluster-node-timeout',
      '1000',
      // replicas must finish their first sync before they can be promoted; start it at once
      '--repl-diskless-sync-delay',
      '0',
      '--cluster-replica-validity-factor',
      '0',
      '--dbfilename',
      `dump-${server.port}.rdb`,
    ]);
  }
  await Promise.all(ports.map((port) => waitForPing(port)));
  await execFileAsync(
    'redis-cli',
    ['--cluster', 'create', ...ports.map((p) => `${HOST}:${p}`), '--cluster-replicas', '1', '--cluster-yes'],
    { timeout: 60_000 },
  );
  const live = () => servers.filter((s) => s.child !== undefined).map((s) => s.port);
  const waitHealthy = async (timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const states = await Promise.all(
        live().map(async (port) => {
          try {
            const info = await redisCli(port, 'CLUSTER', 'INFO');
            return info.includes('cluster_state:ok') && info.includes('cluster_slots_ok:16384');
          } catch {
            return false;
          }
        }),
      );
      if (states.every(Boolean)) return;
      if (Date.now() > deadline) throw new Error('redis cluster did not become healthy');
      await sleep(100);
    }
  };
  await waitHealthy();
  await waitReplicasSynced(ports);
  const masters = async () => {
    const port = live()[0];
    if (port === undefined) return [];
    const lines = (await redisCli(port, 'CLUSTER', 'NODES')).split('\n');
    return lines
      .filter((line) => /\bmaster\b/.test(line) && !/\bfail\b/.test(line))
      .map((line) => Number(line.split(' ')[1]?.split('@')[0]?.split(':')[1]));
  };
  return {
    host: HOST,
    ports,
    nodes: ports.map((port) => ({ host: HOST, port })),
    masters,
    async killNode(port) {
      const server = servers.find((s) => s.port === port);
      if (server) await killAndWait(server, 'SIGKILL');
    },
    waitHealthy,
    async stop() {
      await Promise.all(servers.map((s) => killAndWait(s, 'SIGKILL')));
      removeHook();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A started Redis deployment plus a factory of connected data-layer clients for it. */
export interface RedisTopology {
  readonly name: 'standalone' | 'cluster';
  /** A new connected client with the data layer's defaults; closed by `stop()`. */
  connect(options?: Omit<CreateRedisOptions, 'host' | 'port' | 'clusterNodes'>): Promise<RedisLike>;
  stop(): Promise<void>;
}

export interface TopologyFactory {
  readonly name: 'standalone' | 'cluster';
  start(): Promise<RedisTopology>;
}

function topology(
  name: 'standalone' | 'cluster',
  target: Pick<CreateRedisOptions, 'host' | 'port' | 'clusterNodes'>,
  stopServer: () => Promise<void>,
): RedisTopology {
  const clients: RedisLike[] = [];
  return {
    name,
    async connect(options = {}) {
      const client = createRedis({ commandTimeoutMs: 2000, ...options, ...target });
      clients.push(client);
      await client.connect();
      return client;
    },
    async stop() {
      await Promise.all(clients.map((c) => c.quit()));
      await stopServer();
    },
  };
}

/** Standalone and Cluster, for contract suites that must pass on both. */
export const TOPOLOGIES: readonly TopologyFactory[] = [
  {
    name: 'standalone',
    async start() {
      const server = await startRedis();
      return topology('standalone', { host: server.host, port: server.port }, () => server.stop());
    },
  },
  {
    name: 'cluster',
    async start() {
      const cluster = await startRedisCluster();
      return topology('cluster', { clusterNodes: cluster.nodes }, () => cluster.stop());
    },
  },
];
