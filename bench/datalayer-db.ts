/**
 * @warden/app/db router vs raw pg.Pool, in one run against a throwaway harness cluster:
 *   SELECT 1                          Database.query({ role: 'read' })  vs  pg.Pool.query
 *   primary-key lookup (10 000 rows)  same
 * Both sides get the same number of connections (CONNECTIONS, all pre-opened) and run at the
 * same concurrency. Runs alternate router / raw so drift hits both. Target: router overhead < 5 %.
 * Writes bench/reports/datalayer-db.md.
 *
 *   node --import tsx bench/datalayer-db.ts
 */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import pg from 'pg';
import { createDatabase, type LeakStackMode } from '../packages/app/src/db/index.ts';
import { startCluster } from '../test/harness/postgres.ts';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const OPS = Number(process.env.BENCH_OPS ?? 20_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 7);

interface Measured {
  ops: number;
  /** client-side CPU (user + system) per query, µs: far less sensitive to other load than ops/s */
  cpu: number;
}

/** Runs `op` OPS times with CONCURRENCY workers; returns ops/s and client CPU µs per op. */
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

interface Summary {
  median: number;
  min: number;
  max: number;
  /** median client CPU µs per query */
  cpu: number;
}

function summarize(values: Measured[]): Summary {
  const sorted = [...values].sort((a, b) => a.ops - b.ops);
  const cpus = values.map((v) => v.cpu).sort((a, b) => a - b);
  return {
    median: sorted[Math.floor(sorted.length / 2)]!.ops,
    min: sorted[0]!.ops,
    max: sorted.at(-1)!.ops,
    cpu: cpus[Math.floor(cpus.length / 2)]!,
  };
}

/** Runs the sides in rotating order RUNS times after one warm-up each, so drift hits all. */
async function compare(sides: Array<(i: number) => Promise<unknown>>): Promise<Summary[]> {
  for (const side of sides) await throughput(side);
  const results: Measured[][] = sides.map(() => []);
  for (let r = 0; r < RUNS; r += 1) {
    for (let k = 0; k < sides.length; k += 1) {
      const index = (r + k) % sides.length;
      results[index]!.push(await throughput(sides[index]!));
    }
  }
  return results.map(summarize);
}

async function main(): Promise<void> {
  const cluster = await startCluster({ settings: { max_connections: 100 } });
  await cluster.query(
    'CREATE TABLE account (id int PRIMARY KEY, name text NOT NULL, balance numeric NOT NULL)',
  );
  await cluster.query("INSERT INTO account SELECT g, 'name ' || g, g * 1.5 FROM generate_series(1, 10000) g");
  await cluster.query('ANALYZE account');

  // Production defaults (leak detection with stacks, validation after 500 ms idle, lifetime) with
  // the read pool sized like the raw pool; the other pools stay empty.
  const make = (leakDetectionStacks: LeakStackMode) =>
    createDatabase({
      primary: cluster.url(),
      environment: 'prod',
      pools: {
        read: { minIdle: CONNECTIONS, maxSize: CONNECTIONS, leakDetectionStacks },
        write: { minIdle: 0, maxSize: 1 },
        batch: { minIdle: 0, maxSize: 1 },
      },
    });
  const db = make('per-statement'); // the default
  const everyCheckout = make('every-checkout');
  const lean = make('off');
  await Promise.all([db.start(), everyCheckout.start(), lean.start()]);
  const pool = new pg.Pool({ connectionString: cluster.url(), max: CONNECTIONS });
  pool.on('error', () => undefined);
  await Promise.all(Array.from({ length: CONNECTIONS }, () => pool.query('SELECT 1')));

  const lookup = 'SELECT id, name, balance FROM account WHERE id = $1';
  const key = (i: number) => [(i % 10_000) + 1];
  const results = [
    {
      name: '`SELECT 1`',
      summaries: await compare([
        () => db.query('SELECT 1', [], { role: 'read' }),
        () => everyCheckout.query('SELECT 1', [], { role: 'read' }),
        () => lean.query('SELECT 1', [], { role: 'read' }),
        () => pool.query('SELECT 1'),
      ]),
    },
    {
      name: 'primary-key lookup',
      summaries: await compare([
        (i) => db.query(lookup, key(i), { role: 'read' }),
        (i) => everyCheckout.query(lookup, key(i), { role: 'read' }),
        (i) => lean.query(lookup, key(i), { role: 'read' }),
        (i) => pool.query(lookup, key(i)),
      ]),
    },
  ];
  const stats = db.stats().pools.read;
  await Promise.all([db.close(), everyCheckout.close(), lean.close()]);
  await pool.end();
  await cluster.stop();

  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const spread = (s: Summary) =>
    `${fmt(s.min)}–${fmt(s.max)} (±${((50 * (s.max - s.min)) / s.median).toFixed(1)} %)`;
  const lines = [
    '## PostgreSQL data layer (`@warden/app/db`) benchmark',
    '',
    `Generated by \`node --import tsx bench/datalayer-db.ts\` on ${new Date().toISOString()}.`,
    `Node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} cores), one loopback PostgreSQL 15`,
    `harness cluster (fsync off). ${CONNECTIONS} connections on each side, concurrency ${CONCURRENCY},`,
    `${OPS} queries per run; median of ${RUNS} alternating runs after a warm-up; spread is min–max.`,
    '',
    '| workload | side | ops/s (median) | spread (min–max) | overhead vs raw (ops/s) | client CPU µs/query | CPU vs raw |',
    '|---|---|---:|---|---:|---:|---:|',
    ...results.flatMap((r) => {
      const [defaults, everyCheckout, lean, raw] = r.summaries as [Summary, Summary, Summary, Summary];
      const overhead = (s: Summary) => `${(100 * (1 - s.median / raw.median)).toFixed(1)} %`;
      const cpuOverhead = (s: Summary) => `${(100 * (s.cpu / raw.cpu - 1)).toFixed(1)} %`;
      const row = (side: string, s: Summary) =>
        `| ${r.name} | ${side} | ${fmt(s.median)} | ${spread(s)} | ${overhead(s)} | ${s.cpu.toFixed(1)} | ${cpuOverhead(s)} |`;
      return [
        row("router, defaults (`leakDetectionStacks: 'per-statement'`)", defaults),
        row("router, `leakDetectionStacks: 'every-checkout'`", everyCheckout),
        row("router, `leakDetectionStacks: 'off'`", lean),
        `| ${r.name} | raw \`pg.Pool\` | ${fmt(raw.median)} | ${spread(raw)} | — | ${raw.cpu.toFixed(1)} | — |`,
      ];
    }),
    '',
    'Notes:',
    "- Router sides: `Database.query(sql, params, { role: 'read' })` with production pool defaults",
    '  (validation after 500 ms idle, lifetime timers, leak detection at 60 s), the routing decision',
    "  (no replica configured, so reads land on the primary's read pool) and error classification.",
    '  Leak detection modes: the default, `per-statement`, keeps the stack captured the first',
    '  time each SQL text was checked out (a Map lookup per query; transactions, which hand the',
    '  connection to your code, still capture their own); `every-checkout` captures the stack on',
    "  every checkout (HikariCP's behaviour when leak detection is on: V8 walks the caller's",
    '  frames, starting above the pool, into one holder per connection; formatting waits until a',
    '  warning needs it); `off` keeps leak warnings without stacks. A checkout of an idle',
    '  connection that needs no validation is synchronous (no promise, no microtask hop).',
    '  Raw side: `pg.Pool.query` with the same connection count.',
    '- Target: router overhead < 5 %. Negative overhead means the router was faster within noise.',
    '- The machine is shared with other test runs (2 cores), so spreads are wide; compare medians.',
    '  Client CPU µs/query (user + system of the benchmark process, median run) is far less',
    '  sensitive to that load and shows what each side costs per query.',
    `- Router read pool at the end: ${
      stats
        ? Object.values(stats)
            .map(
              (s) =>
                `${s.name} created ${s.created}, acquired ${s.acquired}, validation failures ${s.validationFailures}, timeouts ${s.timeouts}`,
            )
            .join('; ')
        : ''
    }.`,
    '',
  ];
  await mkdir(new URL('./reports/', import.meta.url), { recursive: true });
  await writeFile(new URL('./reports/datalayer-db.md', import.meta.url), lines.join('\n'));
  process.stdout.write(lines.join('\n'));
}

await main();
