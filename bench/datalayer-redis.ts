/**
 * Redis data layer vs its peers, in one run against a throwaway redis-server:
 *   cache hit getOrSet  vs  raw GET on the same ioredis client (target >= 90 %)
 *   SessionStore (express Store API) get+set  vs  connect-redis get+set (node-redis client)
 *   RateLimiter.consume  vs  rate-limiter-flexible RateLimiterRedis.consume (ioredis)
 * Throughput at fixed concurrency; median of RUNS runs. Writes bench/reports/datalayer-redis.md.
 *
 *   node --import tsx bench/datalayer-redis.ts
 */
import { writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import { RedisStore } from 'connect-redis';
import type { SessionData } from 'express-session';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { createClient } from 'redis';
import { Cache } from '../src/datalayer/cache/index.ts';
import { RateLimiter } from '../src/datalayer/ratelimit/index.ts';
import { fromIoredis } from '../src/datalayer/redis/index.ts';
import { ExpressSessionStore, generateSessionId } from '../src/datalayer/sessions/index.ts';
import { startRedis } from '../test/harness/redis.ts';

const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const OPS = Number(process.env.BENCH_OPS ?? 20_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

/** Runs `op` OPS times with CONCURRENCY workers; returns ops/s. */
async function throughput(op: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < OPS) await op(next++);
    }),
  );
  return OPS / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function median(op: (i: number) => Promise<unknown>): Promise<number> {
  await throughput(op); // warm-up
  const results: number[] = [];
  for (let r = 0; r < RUNS; r++) results.push(await throughput(op));
  results.sort((a, b) => a - b);
  return results[Math.floor(results.length / 2)]!;
}

const promisify =
  <T>(fn: (cb: (err?: unknown, value?: T) => void) => void) =>
  () =>
    new Promise<T | undefined>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));

async function main(): Promise<void> {
  const server = await startRedis();
  const io = new Redis({ port: server.port, lazyConnect: true });
  await io.connect();
  const nodeRedis = createClient({ socket: { host: '127.0.0.1', port: server.port } });
  await nodeRedis.connect();
  const rows: Array<[string, string, number, string, number]> = [];

  // cache hit vs raw GET, same client, same value
  const redis = fromIoredis(io);
  const cache = new Cache({ redis, prefix: 'bench:cache:' });
  const value = { id: 42, name: 'Ada Lovelace', balance: 1234.5, tags: ['a', 'b', 'c'] };
  // 1000 distinct keys, so in-process request coalescing cannot flatter the cache
  for (let k = 0; k < 1000; k++) await cache.getOrSet(`client:${k}`, () => value);
  const raw = await median((i) => io.get(`bench:cache:k:client:${i % 1000}`));
  const hit = await median((i) => cache.getOrSet(`client:${i % 1000}`, () => value));
  rows.push(['cache hit', 'Cache.getOrSet (JSON, no L1)', hit, 'raw ioredis GET', raw]);
  const l1 = new Cache({ redis, prefix: 'bench:cache:', l1: { maxEntries: 1000 } });
  const l1Hit = await median((i) => l1.getOrSet(`client:${i % 1000}`, () => value));
  rows.push(['cache hit, L1 on', 'Cache.getOrSet (L1)', l1Hit, 'raw ioredis GET', raw]);

  // sessions: a 2 KB session, get then set (what express-session does on a modified request)
  const sessionData = {
    cookie: { originalMaxAge: 1_800_000, httpOnly: true, path: '/' },
    userId: 'user-1',
    blob: 'x'.repeat(2000),
  } as unknown as SessionData;
  const ids = Array.from({ length: 1000 }, () => generateSessionId());
  for (const encrypted of [false, true]) {
    const ours = new ExpressSessionStore({
      redis,
      prefix: `bench:sess${encrypted ? 'e' : ''}:`,
      encryption: encrypted,
    });
    for (const id of ids) await promisify<unknown>((cb) => ours.set(id, sessionData, cb))();
    const oursOps = await median(async (i) => {
      const id = ids[i % ids.length]!;
      const loaded = await promisify<SessionData | null>((cb) => ours.get(id, cb))();
      await promisify<unknown>((cb) => ours.set(id, loaded!, cb))();
    });
    const theirs = new RedisStore({ client: nodeRedis, prefix: 'bench:cr:', ttl: 1800 });
    for (const id of ids) await theirs.set(id, sessionData);
    const theirsOps = await median(async (i) => {
      const id = ids[i % ids.length]!;
      const loaded = (await theirs.get(id)) as SessionData;
      await theirs.set(id, loaded);
    });
    rows.push([
      'session get+set (2 KB)',
      `ExpressSessionStore${encrypted ? ' (AES-256-GCM)' : ''}`,
      oursOps,
      'connect-redis 9 (node-redis 6)',
      theirsOps,
    ]);
  }

  // rate limiting: a limit high enough that every call is allowed, keys spread over 1000 users
  const limiter = new RateLimiter({ redis, prefix: 'bench:rl:', limit: 1e9, windowMs: 60_000 });
  const ours = await median((i) => limiter.consume(`user:${i % 1000}`));
  const rlf = new RateLimiterRedis({ storeClient: io, keyPrefix: 'bench:rlf', points: 1e9, duration: 60 });
  const theirs = await median((i) => rlf.consume(`user:${i % 1000}`));
  rows.push([
    'rate limit consume',
    'RateLimiter (GCRA, Lua)',
    ours,
    'rate-limiter-flexible RateLimiterRedis',
    theirs,
  ]);

  await nodeRedis.quit();
  io.disconnect();
  await server.stop();

  const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
  const lines = [
    '# Redis data layer benchmark',
    '',
    `Generated by \`node --import tsx bench/datalayer-redis.ts\` on ${new Date().toISOString()}.`,
    `Node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} cores), one loopback redis-server`,
    `(\`--save '' --appendonly no\`). ${OPS} ops per run at concurrency ${CONCURRENCY}; median of ${RUNS} runs after a warm-up.`,
    '',
    '| workload | Warden | ops/s | peer | ops/s | Warden / peer |',
    '|---|---|---:|---|---:|---:|',
    ...rows.map(
      ([w, a, x, b, y]) => `| ${w} | ${a} | ${fmt(x)} | ${b} | ${fmt(y)} | ${((100 * x) / y).toFixed(0)} % |`,
    ),
    '',
    'Notes:',
    '- The cache-hit target is >= 90 % of a raw GET on the same client; the difference is JSON.parse,',
    '  the breaker check and the timeout guard.',
    '- The session store does more per call than connect-redis: one Lua script that checks idle and',
    '  absolute expiry on the Redis clock and slides the idle window (connect-redis: plain GET/SET),',
    '  hashing the id so Redis never sees it, and optionally AES-256-GCM with a per-session key.',
    '- Both limiters make one Lua round trip per call.',
    '',
  ];
  await mkdir(new URL('./reports/', import.meta.url), { recursive: true });
  await writeFile(new URL('./reports/datalayer-redis.md', import.meta.url), lines.join('\n'));
  process.stdout.write(lines.join('\n'));
}

await main();
