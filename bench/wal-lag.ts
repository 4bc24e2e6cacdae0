/**
 * The WAL flush lag section of bench/core.ts on its own, with what explains it: the server's
 * `pg_stat_replication.flush_lag` against Warden's time to durable, while `pgbench -c 4 -j 2`
 * runs. Prints a Markdown table; the machine's load average at start and end.
 *
 *   node --import tsx bench/wal-lag.ts [--seconds 30] [--rounds 3] [--scale 10]
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { WalReceiver } from '../src/backup/wal-receiver.ts';
import { connectionFromUrl } from '../src/postgres/connection-config.ts';
import { FsObjectStore } from '../src/repository/fs/fs-object-store.ts';
import { parseLsn } from '../src/wal/lsn.ts';
import { startCluster, type TestCluster } from '../test/harness/postgres.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
};
const SECONDS = arg('seconds', 30);
const ROUNDS = arg('rounds', 3);
const SCALE = arg('scale', 10);
const PGBIN = '/usr/lib/postgresql/15/bin';

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

function intervalMs(v: unknown): number | undefined {
  if (v === null || v === undefined || typeof v !== 'object') return undefined;
  const x = v as { hours?: number; minutes?: number; seconds?: number; milliseconds?: number };
  return ((x.hours ?? 0) * 3600 + (x.minutes ?? 0) * 60 + (x.seconds ?? 0)) * 1000 + (x.milliseconds ?? 0);
}

function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', () => undefined);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}`))));
  });
}

/** Waits (bounded) until flush_lag is NULL; returns the largest value seen meanwhile and how long it took. */
async function settled(sampler: pg.Client): Promise<{ maxMs: number; waitedMs: number }> {
  const start = performance.now();
  let maxMs = 0;
  while (performance.now() - start < 10_000) {
    const { rows } = await sampler.query<{ flush_lag: unknown }>(
      'SELECT flush_lag FROM pg_stat_replication ORDER BY backend_start DESC LIMIT 1',
    );
    const ms = intervalMs(rows[0]?.flush_lag);
    if (ms === undefined) break;
    maxMs = Math.max(maxMs, ms);
    await sleep(20);
  }
  return { maxMs, waitedMs: performance.now() - start };
}

async function round(cluster: TestCluster, pgEnv: NodeJS.ProcessEnv, n: number) {
  const repo = path.join(cluster.workDir, `wal-lag-${n}`);
  const slot = `bench_lag_${n}`;
  const controller = new AbortController();
  let flushed = 0n;
  const flushes: Array<{ t: number; lsn: bigint }> = [];
  const receiver = new WalReceiver({
    connection: { ...connectionFromUrl(cluster.url()), tls: 'disable' },
    store: new FsObjectStore(repo),
    slotName: slot,
    signal: controller.signal,
    onFlush: (lsn) => {
      flushed = lsn;
      flushes.push({ t: performance.now(), lsn });
    },
  });
  const cpu0 = process.cpuUsage();
  const running = receiver.run();
  const sampler = new pg.Client({ connectionString: cluster.url() });
  await sampler.connect();
  const current = async () =>
    parseLsn((await sampler.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l')).rows[0]!.l);
  try {
    const started = performance.now();
    const deadline = Date.now() + 60_000;
    while (!(flushed > 0n && flushed >= (await current()))) {
      if (Date.now() > deadline) throw new Error('receiver did not catch up');
      await sleep(100);
    }
    const caughtUpS = (performance.now() - started) / 1000;
    // The server keeps the lag it measured over the catch-up (the backlog from the segment start)
    // until a second reply finds the receiver level with what was sent; it then shows NULL.
    const catchUpLag = await settled(sampler);
    let done = false;
    const bench = exec(
      `${PGBIN}/pgbench`,
      ['-c', '4', '-j', '2', '-T', String(SECONDS), '-n', 'postgres'],
      pgEnv,
    ).finally(() => (done = true));
    const lag: number[] = [];
    const replyAge: number[] = [];
    const samples: Array<{ t: number; lsn: bigint }> = [];
    let nulls = 0;
    const t0 = performance.now();
    while (!done) {
      const t = performance.now();
      const { rows } = await sampler.query<{ flush_lag: unknown; lsn: string; reply_age: number | null }>(
        `SELECT flush_lag, pg_current_wal_lsn()::text AS lsn,
                (EXTRACT(EPOCH FROM clock_timestamp() - reply_time) * 1000)::float8 AS reply_age
           FROM pg_stat_replication ORDER BY backend_start DESC LIMIT 1`,
      );
      const row = rows[0];
      if (row) {
        samples.push({ t, lsn: parseLsn(row.lsn) });
        if (row.reply_age !== null) replyAge.push(row.reply_age);
        const ms = intervalMs(row.flush_lag);
        if (ms === undefined) nulls += 1;
        else lag.push(ms);
        if (process.env.WAL_LAG_TRACE)
          console.error(
            `t=${((t - t0) / 1000).toFixed(2)} flush_lag=${ms} reply_age=${row.reply_age?.toFixed(0)} behind=${Number(parseLsn(row.lsn) - flushed)}`,
          );
      }
      await sleep(Math.max(0, 200 - (performance.now() - t)));
    }
    const tps = Number(/tps = ([\d.]+)/.exec(await bench)?.[1] ?? NaN);
    const end = await current();
    const drain = Date.now() + 10_000;
    while (flushed < end && Date.now() < drain) await sleep(20);
    const finished = performance.now();
    const durable = samples.map((s) => {
      const e = flushes.find((f) => f.lsn >= s.lsn);
      return e ? Math.max(0, e.t - s.t) : finished - s.t;
    });
    const cpu = process.cpuUsage(cpu0);
    return {
      caughtUpS,
      catchUpLag,
      lag,
      replyAge,
      durable,
      nulls,
      samples: samples.length,
      tps,
      flushes: flushes.length,
      cpuS: (cpu.user + cpu.system) / 1e6,
    };
  } finally {
    controller.abort();
    await running.catch(() => undefined);
    await sampler.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => undefined);
    await sampler.end();
    await rm(repo, { recursive: true, force: true });
  }
}

const load0 = os.loadavg()[0]!;
const cluster = await startCluster({ settings: { shared_buffers: '128MB' } });
try {
  const pgEnv = {
    PGHOST: '127.0.0.1',
    PGPORT: String(cluster.port),
    PGUSER: 'postgres',
    PGPASSWORD: cluster.password,
  };
  await exec(`${PGBIN}/pgbench`, ['-i', '-q', '-s', String(SCALE), 'postgres'], pgEnv);
  const rows: string[] = [];
  for (let n = 1; n <= ROUNDS; n += 1) {
    const r = await round(cluster, pgEnv, n);
    const line = `| ${n} | ${r.caughtUpS.toFixed(1)} | ${r.catchUpLag.maxMs.toFixed(0)} / ${r.catchUpLag.waitedMs.toFixed(0)} | ${pct(r.durable, 50).toFixed(0)} / ${pct(r.durable, 99).toFixed(0)} | ${pct(r.lag, 50).toFixed(0)} / ${pct(r.lag, 99).toFixed(0)} / ${Math.max(...r.lag).toFixed(0)} | ${pct(r.replyAge, 99).toFixed(0)} / ${Math.max(...r.replyAge).toFixed(0)} | ${r.tps.toFixed(0)} | ${r.flushes} | ${r.cpuS.toFixed(2)} | ${r.samples} (${r.nulls}) | ${os.loadavg()[0]!.toFixed(1)} |`;
    console.error(line);
    rows.push(line);
  }
  const report = [
    '## WAL flush lag as the server sees it (`bench/wal-lag.ts`)',
    '',
    `\`node --import tsx bench/wal-lag.ts --seconds ${SECONDS} --rounds ${ROUNDS} --scale ${SCALE}\` on ${new Date().toISOString()}: WalReceiver in the bench process, \`pgbench -c 4 -j 2 -T ${SECONDS}\`, \`pg_stat_replication\` sampled every 200 ms. 1-min load average ${load0.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end (2 vCPUs shared with other work).`,
    '',
    '| round | catch-up s | server flush_lag after the catch-up: ms / ms until NULL | time to durable p50 / p99 ms | server flush_lag p50 / p99 / max ms | reply age p99 / max ms | tps | flushes | bench process CPU s | samples (NULL) | load after |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    'Each round: a fresh slot and repository; the receiver streams from the start of its segment and catches up; the load starts once the server has cleared the flush_lag it measured over that catch-up. The server keeps showing that catch-up lag, although the receiver is level and replying, until a second reply finds it level with what was sent (the receiver\'s idle probe, ~0.5 s): sampling from the moment Warden\'s own view is caught up, as `bench/core.ts` did, counts the catch-up as load lag. "Time to durable": per sample, from reading `pg_current_wal_lsn()` until `onFlush` reported that LSN fsynced. `WAL_LAG_TRACE=1` prints every sample.',
  ].join('\n');
  await writeFile(path.join(import.meta.dirname, 'reports', 'wal-lag.md'), `${report}\n`);
  console.log(report);
} finally {
  await cluster.stop();
}
