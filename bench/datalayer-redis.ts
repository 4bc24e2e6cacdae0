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
import { Cache } from '../packages/app/src/cache/index.ts';
import { RateLimiter } from '../packages/app/src/ratelimit/index.ts';
import { fromIoredis } from '../packages/app/src/redis/index.ts';
import { ExpressSessionStore } from '../packages/app/src/sessions/express-store.ts';
import { generateSessionId } from '../packages/app/src/sessions/index.ts';
import { startRedis } from '../test/harness/redis.ts';

const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const OPS = Number(process.env.BENCH_OPS ?? 20_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);

interface Measured {
  /** ops/s */
  ops: number;
  /** client-side CPU (user + system) per operation, µs: far less sensitive to other load than ops/s */
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

const mid = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const summary = (results: Measured[]): Measured => ({
  ops: mid(results.map((m) => m.ops)),
  cpu: mid(results.map((m) => m.cpu)),
});

/** Medians of ops/s and of CPU per op over RUNS runs after a warm-up. */
async function median(op: (i: number) => Promise<unknown>): Promise<Measured> {
  await throughput(op); // warm-up
  const results: Measured[] = [];
  for (let r = 0; r < RUNS; r++) results.push(await throughput(op));
  return summary(results);
}

/** Every side after a warm-up each, then RUNS rounds in rotating order, so drift hits all. */
async function rotate(sides: Array<(i: number) => Promise<unknown>>): Promise<Measured[]> {
  for (const side of sides) await throughput(side);
  const results: Measured[][] = sides.map(() => []);
  for (let r = 0; r < RUNS; r++) {
    for (let k = 0; k < sides.length; k++) {
      const index = (r + k) % sides.length;
      results[index]!.push(await throughput(sides[index]!));
    }
  }
  return results.map(summary);
}

/** Both sides after a warm-up each, then RUNS rounds in alternating order, so drift hits both. */
async function pair(
  ours: (i: number) => Promise<unknown>,
  theirs: (i: number) => Promise<unknown>,
): Promise<[Measured, Measured]> {
  await throughput(ours);
  await throughput(theirs);
  const a: Measured[] = [];
  const b: Measured[] = [];
  for (let r = 0; r < RUNS; r++) {
    if (r % 2 === 0) {
      a.push(await throughput(ours));
      b.push(await throughput(theirs));
    } else {
      b.push(await throughput(theirs));
      a.push(await throughput(ours));
    }
  }
  return [summary(a), summary(b)];
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
  const rows: Array<[string, string, Measured, string, Measured]> = [];

  // cache hit vs raw GET, same client, same value
  const redis = fromIoredis(io);
  const cache = new Cache({ redis, prefix: 'bench:cache:' });
  const value = { id: 42, name: 'Ada Lovelace', balance: 1234.5, tags: ['a', 'b', 'c'] };
  // 1000 distinct keys, so in-process request coalescing cannot flatter the cache
  for (let k = 0; k < 1000; k++) await cache.getOrSet(`client:${k}`, () => value);
  // The same GET from a client with ioredis' auto-pipelining, which also coalesces the writes of
  // one tick: the raw path at its best.
  const ioPipelined = new Redis({ port: server.port, lazyConnect: true, enableAutoPipelining: true });
  await ioPipelined.connect();
  const [hit, raw, rawParsed, rawPipelined] = (await rotate([
    (i) => cache.getOrSet(`client:${i % 1000}`, () => value),
    (i) => io.get(`bench:cache:k:client:${i % 1000}`),
    async (i) => JSON.parse((await io.get(`bench:cache:k:client:${i % 1000}`))!) as unknown,
    (i) => ioPipelined.get(`bench:cache:k:client:${i % 1000}`),
  ])) as [Measured, Measured, Measured, Measured];
  ioPipelined.disconnect();
  rows.push(['cache hit', 'Cache.getOrSet (JSON, no L1)', hit, 'raw ioredis GET', raw]);
  rows.push(['cache hit', 'Cache.getOrSet (JSON, no L1)', hit, 'raw ioredis GET + JSON.parse', rawParsed]);
  rows.push([
    'cache hit',
    'Cache.getOrSet (JSON, no L1)',
    hit,
    'raw GET, ioredis enableAutoPipelining',
    rawPipelined,
  ]);
  const l1 = new Cache({ redis, prefix: 'bench:cache:', l1: { maxEntries: 1000 } });
  await l1.start(); // the L1 serves only under a confirmed generation (docs/cache-coherence.md)
  const l1Hit = await median((i) => l1.getOrSet(`client:${i % 1000}`, () => value));
  rows.push(['cache hit, L1 on', 'Cache.getOrSet (L1)', l1Hit, 'raw ioredis GET', raw]);
  await l1.stop();

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
    const theirs = new RedisStore({ client: nodeRedis, prefix: 'bench:cr:', ttl: 1800 });
    for (const id of ids) await theirs.set(id, sessionData);
    const [oursOps, theirsOps] = await pair(
      async (i) => {
        const id = ids[i % ids.length]!;
        const loaded = await promisify<SessionData | null>((cb) => ours.get(id, cb))();
        await promisify<unknown>((cb) => ours.set(id, loaded!, cb))();
      },
      async (i) => {
        const id = ids[i % ids.length]!;
        const loaded = (await theirs.get(id)) as SessionData;
        await theirs.set(id, loaded);
      },
    );
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
  const rlf = new RateLimiterRedis({ storeClient: io, keyPrefix: 'bench:rlf', points: 1e9, duration: 60 });
  const [ours, theirs] = await pair(
    (i) => limiter.consume(`user:${i % 1000}`),
    (i) => rlf.consume(`user:${i % 1000}`),
  );
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
  const us = (m: Measured) => m.cpu.toFixed(1);
  const lines = [
    '# Redis data layer benchmark',
    '',
    `Generated by \`node --import tsx bench/datalayer-redis.ts\` on ${new Date().toISOString()}.`,
    `Node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} cores), one loopback redis-server`,
    `(\`--save '' --appendonly no\`). ${OPS} ops per run at concurrency ${CONCURRENCY}; median of ${RUNS} runs after a warm-up.`,
    '',
    '| workload | Warden | ops/s | CPU µs/op | peer | ops/s | CPU µs/op | Warden / peer (ops/s) |',
    '|---|---|---:|---:|---|---:|---:|---:|',
    ...rows.map(
      ([w, a, x, b, y]) =>
        `| ${w} | ${a} | ${fmt(x.ops)} | ${us(x)} | ${b} | ${fmt(y.ops)} | ${us(y)} | ${((100 * x.ops) / y.ops).toFixed(0)} % |`,
    ),
    '',
    'Notes:',
    "- CPU µs/op is the client process's user + system CPU time per operation (median run): it shows",
    '  the per-call cost of each side even when other work on the machine makes ops/s noisy.',
    '- The cache-hit target is >= 90 % of a raw GET on the same client. The cache does per hit: the',
    '  breaker check, the GET (built as the ioredis Command `get` sends, so the caller gets its promise',
    "  chained once; no promise of the cache's), the timeout guard (this client has no command timeout",
    '  of its own, so the cache applies its 250 ms default: an entry in one shared deadline queue with',
    '  one timer, which cancels the Command when it expires), JSON.parse and the stats. Concurrent',
    '  misses of a key share one loader call; hits share nothing. The Redis adapter corks the socket',
    '  when it sends a command (standalone clients) and uncorks after 8 commands or at the end of the',
    '  tick, so what concurrent callers send in one tick leaves in a few writes: a system call per',
    '  command was about 2 µs of the ~5 µs a raw GET costs the client here. That is why the cache',
    "  beats a plain GET; the third row compares with ioredis' own auto-pipelining, which batches",
    '  the same way. (One write per tick left the server idle while the client prepared the next',
    '  batch: the Lua-heavy limiter ran at half its throughput; batches of 8 keep both busy.) The',
    '  second row compares with a raw GET that also parses the JSON it gets. Sessions and the limiter',
    '  go through the same adapter.',
    '- The session store does more per call than connect-redis: one Lua script that checks idle and',
    '  absolute expiry on the Redis clock and slides the idle window (connect-redis: plain GET/SET),',
    '  hashing the id so Redis never sees it, and optionally AES-256-GCM with a per-session key.',
    '  A save writes the per-user index (another hash slot on Cluster, so a second round trip) only',
    '  when the session is new or changes user. With encryption the HKDF-derived key is cached per',
    '  session handle (bounded LRU), so a load + save derives it once; the encrypted row is compared',
    '  with connect-redis without encryption (it has none).',
    '- Both limiters make one Lua round trip per call (EVALSHA).',
    '',
  ];
  await mkdir(new URL('./reports/', import.meta.url), { recursive: true });
  await writeFile(new URL('./reports/datalayer-redis.md', import.meta.url), lines.join('\n'));
  process.stdout.write(lines.join('\n'));
}

await main();
