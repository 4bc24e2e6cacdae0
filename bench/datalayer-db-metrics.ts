/**
 * @warden/app/db router with `metrics: { registry }` vs without, in one run against a throwaway
 * harness cluster: client CPU per query (process.cpuUsage over each run / queries), the figure the
 * metrics budget is about (≤ 3 % growth); ops/s is printed too but swings with the machine's load.
 * Sides run in rotating order each round so drift hits all. With BENCH_BASELINE=<dir holding a
 * copy of packages/app/src from before the metrics change>, the old router runs as a third side.
 * Writes bench/reports/datalayer-db-metrics.md.
 *
 *   node --import tsx bench/datalayer-db-metrics.ts
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import { createDatabase, type DatabaseOptions } from '../packages/app/src/db/index.ts';
import type { DbConnection } from '../packages/app/src/db/driver.ts';
import { ConnectionPool, type PoolOptions } from '../packages/app/src/db/pool.ts';
import { startCluster } from '../test/harness/postgres.ts';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const OPS = Number(process.env.BENCH_OPS ?? 20_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 11);
const BASELINE = process.env.BENCH_BASELINE;

interface Measured {
  ops: number;
  cpu: number;
}

async function throughput(op: (i: number) => Promise<unknown>): Promise<Measured> {
  let next = 0;
  const started = process.hrtime.bigint();
  const cpuBefore = process.cpuUsage();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < OPS) await op(next++);
    }),
  );
  const cpu = process.cpuUsage(cpuBefore);
  return {
    ops: OPS / (Number(process.hrtime.bigint() - started) / 1e9),
    cpu: (cpu.user + cpu.system) / OPS,
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function compare(sides: Array<(i: number) => Promise<unknown>>): Promise<Measured[][]> {
  for (const side of sides) await throughput(side);
  const results: Measured[][] = sides.map(() => []);
  for (let r = 0; r < RUNS; r += 1) {
    for (let k = 0; k < sides.length; k += 1) {
      const index = (r + k) % sides.length;
      results[index]!.push(await throughput(sides[index]!));
    }
  }
  return results;
}

const CYCLES = Number(process.env.BENCH_CYCLES ?? 200_000);

/** A connection that is never used for I/O: the pool-only micro-benchmark checks it out and back. */
function idleConnection(): DbConnection {
  return {
    host: { key: 'bench:1' } as DbConnection['host'],
    backendPid: undefined,
    broken: false,
    query: () => Promise.reject(new Error('not for queries')),
    onBroken: () => undefined,
    close: () => Promise.resolve(),
  };
}

/**
 * What the pool itself adds per checkout, without a server: tryAcquire + release, CYCLES times,
 * CPU ns per cycle; this code's pool vs the one before the metrics change, interleaved rounds.
 */
async function poolCycles(
  pools: Array<{ tryAcquire(sql?: string): { release(): void } | undefined }>,
): Promise<number[][]> {
  const results: number[][] = pools.map(() => []);
  const once = (pool: (typeof pools)[number]) => {
    const before = process.cpuUsage();
    for (let i = 0; i < CYCLES; i += 1) pool.tryAcquire('SELECT 1')!.release();
    const cpu = process.cpuUsage(before);
    return ((cpu.user + cpu.system) * 1000) / CYCLES;
  };
  for (const pool of pools) once(pool);
  for (let r = 0; r < RUNS; r += 1) {
    for (let k = 0; k < pools.length; k += 1) {
      const index = (r + k) % pools.length;
      results[index]!.push(once(pools[index]!));
    }
  }
  return results;
}

type Factory = (options: DatabaseOptions) => {
  query: ReturnType<typeof createDatabase>['query'];
  start(): Promise<void>;
  close(): Promise<void>;
};

async function main(): Promise<void> {
  const cluster = await startCluster({ settings: { max_connections: 100 } });
  await cluster.query(
    'CREATE TABLE account (id int PRIMARY KEY, name text NOT NULL, balance numeric NOT NULL)',
  );
  await cluster.query("INSERT INTO account SELECT g, 'name ' || g, g * 1.5 FROM generate_series(1, 10000) g");
  await cluster.query('ANALYZE account');

  const options: DatabaseOptions = {
    primary: cluster.url(),
    environment: 'prod',
    pools: {
      read: { minIdle: CONNECTIONS, maxSize: CONNECTIONS },
      write: { minIdle: 0, maxSize: 1 },
      batch: { minIdle: 0, maxSize: 1 },
    },
  };
  const registry = new Registry();
  const off = createDatabase(options);
  const on = createDatabase({ ...options, metrics: { registry } });
  const sides: Array<{ name: string; db: ReturnType<Factory> }> = [
    { name: 'metrics off', db: off },
    { name: 'metrics on', db: on },
  ];
  if (BASELINE) {
    const url = pathToFileURL(path.resolve(BASELINE, 'db/index.ts')).href;
    const { createDatabase: before } = (await import(url)) as { createDatabase: Factory };
    sides.push({ name: 'before the metrics change', db: before(options) });
  }
  await Promise.all(sides.map((s) => s.db.start()));

  const load = [os.loadavg()[0]!];
  const lookup = 'SELECT id, name, balance FROM account WHERE id = $1';
  const key = (i: number) => [(i % 10_000) + 1];
  const workloads = [
    { name: '`SELECT 1`', op: (db: ReturnType<Factory>) => () => db.query('SELECT 1', [], { role: 'read' }) },
    {
      name: 'primary-key lookup',
      op: (db: ReturnType<Factory>) => (i: number) => db.query(lookup, key(i), { role: 'read' }),
    },
  ];
  const results = [];
  for (const w of workloads) {
    results.push({ name: w.name, runs: await compare(sides.map((s) => w.op(s.db))) });
    load.push(os.loadavg()[0]!);
  }
  let cycles: { names: string[]; runs: number[][] } | undefined;
  if (BASELINE) {
    const url = pathToFileURL(path.resolve(BASELINE, 'db/pool.ts')).href;
    const { ConnectionPool: BeforePool } = (await import(url)) as { ConnectionPool: typeof ConnectionPool };
    const poolOptions: PoolOptions = {
      name: 'bench',
      minIdle: 1,
      maxSize: 1,
      idleTimeoutMs: 60_000,
      connectionTimeoutMs: 1_000,
      maxLifetimeMs: 1_800_000,
      leakDetectionThresholdMs: 60_000,
      leakDetectionStacks: 'per-statement',
      validateAfterIdleMs: 500,
      validationTimeoutMs: 1_000,
      open: async () => idleConnection(),
      logger: { debug() {}, info() {}, warn() {}, error() {} },
    };
    const now = new ConnectionPool(poolOptions);
    const before = new BeforePool(poolOptions);
    await Promise.all([now.start(), before.start()]);
    cycles = { names: ['this code', 'before the metrics change'], runs: await poolCycles([now, before]) };
    await Promise.all([now.close(), before.close()]);
  }
  const scraped = await registry.metrics();
  const acquired = /hikaricp_connections_acquire_seconds_count\{pool="read@[^"]+"\} (\d+)/.exec(scraped)?.[1];
  await Promise.all(sides.map((s) => s.db.close()));
  await cluster.stop();

  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const lines = [
    '## Service library metrics: router CPU per query with `metrics` on vs off',
    '',
    `Generated by \`node --import tsx bench/datalayer-db-metrics.ts\` on ${new Date().toISOString()}.`,
    `Node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} cores), one loopback PostgreSQL 15`,
    `harness cluster (fsync off). ${CONNECTIONS} connections, concurrency ${CONCURRENCY}, ${OPS} queries per run;`,
    `${RUNS} rounds, sides in rotating order each round, after a warm-up run each. Load average (1 min)`,
    `during the run: ${load.map((l) => l.toFixed(1)).join(' → ')} on ${os.cpus().length} cores (shared machine).`,
    '',
    '| workload | side | client CPU µs/query (median) | CPU spread (min–max) | CPU vs metrics off (medians) | CPU vs metrics off (median of per-round ratios) | ops/s (median) |',
    '|---|---|---:|---|---:|---:|---:|',
    ...results.flatMap((r) => {
      const offCpu = median(r.runs[0]!.map((m) => m.cpu));
      return sides.map((side, i) => {
        const cpus = r.runs[i]!.map((m) => m.cpu);
        const cpu = median(cpus);
        const vs = i === 0 ? '—' : `${(100 * (cpu / offCpu - 1)).toFixed(1)} %`;
        // Paired: each round's ratio to the metrics-off run of the same round, so load drift cancels.
        const ratios = cpus.map((c, round) => c / r.runs[0]![round]!.cpu);
        const paired = i === 0 ? '—' : `${(100 * (median(ratios) - 1)).toFixed(1)} %`;
        return `| ${r.name} | ${side.name} | ${cpu.toFixed(2)} | ${Math.min(...cpus).toFixed(2)}–${Math.max(...cpus).toFixed(2)} | ${vs} | ${paired} | ${fmt(median(r.runs[i]!.map((m) => m.ops)))} |`;
      });
    }),
    '',
    ...(cycles
      ? [
          `Pool only, no server: \`tryAcquire('SELECT 1')\` + \`release()\` of one idle connection, ${CYCLES} cycles per`,
          `run, ${RUNS} interleaved rounds (the code path every \`query()\` takes through the pool, and where the`,
          'metrics counters live):',
          '',
          '| side | CPU ns per checkout + release (median) | spread (min–max) | vs before |',
          '|---|---:|---|---:|',
          ...cycles.names.map((name, i) => {
            const runs = cycles!.runs[i]!;
            const m = median(runs);
            const base = median(cycles!.runs[1]!);
            return `| ${name} | ${m.toFixed(0)} | ${Math.min(...runs).toFixed(0)}–${Math.max(...runs).toFixed(0)} | ${i === 1 ? '—' : `${(m - base).toFixed(0)} ns (${(100 * (m / base - 1)).toFixed(1)} %)`} |`;
          }),
          '',
        ]
      : []),
    'Notes:',
    "- Sides: `Database.query(sql, params, { role: 'read' })` with production pool defaults; `metrics on`",
    '  registers the pools on a prom-client `Registry` (HikariCP names). Per query the pool keeps the same',
    '  plain counters either way (checkouts, usage time, a 3-slot window max); prom-client is touched only',
    `  when scraped. The metrics-on read pool reported ${acquired ?? '?'} acquires at the end (warm-ups included).`,
    BASELINE
      ? '- `before the metrics change`: the library source of the commit before it, same options.'
      : '- Run with `BENCH_BASELINE=<copy of packages/app/src before the change>` to add the old router as a side.',
    '- Target: CPU per query with metrics on at most 3 % above metrics off. Throughput swings with other',
    '  work on the machine; CPU per query is the steady figure.',
    '',
  ];
  await mkdir(new URL('./reports/', import.meta.url), { recursive: true });
  await writeFile(new URL('./reports/datalayer-db-metrics.md', import.meta.url), lines.join('\n'));
  process.stdout.write(lines.join('\n'));
}

await main();
