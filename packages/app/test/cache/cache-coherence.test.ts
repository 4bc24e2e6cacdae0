import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Cache, type CacheOptions } from '../../src/cache/index.ts';
import { LuaScript } from '../../src/redis/lua-script.ts';
import type { MessageHandler, RedisLike } from '../../src/redis/redis-like.ts';
import { TOPOLOGIES, type RedisTopology } from '../../../../test/harness/redis.ts';

// The library half of cache coherence (docs/cache-coherence.md): what an instance does when the
// daemon announces an invalidation, and when it misses the announcement. The daemon's side of
// the wire (INCR of the generation key, PUBLISH of `{o:"warden",c:1,g}`) is written here by hand;
// test/cache-coherence/failover-invalidation.test.ts runs the real daemon.

const INCR = new LuaScript("return redis.call('INCR', KEYS[1])");
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The real client with some calls replaced (fault injection); everything else goes to the server. */
function faulty(redis: RedisLike, overrides: Partial<RedisLike>): RedisLike {
  return {
    isCluster: redis.isCluster,
    commandTimeoutMs: redis.commandTimeoutMs,
    connect: () => redis.connect(),
    quit: () => redis.quit(),
    get: (key) => redis.get(key),
    set: (key, value, options) => redis.set(key, value, options),
    unlink: (keys) => redis.unlink(keys),
    eval: (script, keys, args) => redis.eval(script, keys, args),
    scan: (pattern, onKeys, count) => redis.scan(pattern, onKeys, count),
    publish: (channel, message) => redis.publish(channel, message),
    subscribe: (channel, handler) => redis.subscribe(channel, handler),
    ...overrides,
  };
}

/** A client whose subscription can be cut (messages dropped), as when a subscriber is away. */
function withCuttableSubscription(redis: RedisLike): { redis: RedisLike; cut(): void } {
  let cut = false;
  const wrapped = faulty(redis, {
    subscribe: (channel: string, handler: MessageHandler) =>
      redis.subscribe(channel, (message) => {
        if (!cut) handler(message);
      }),
  });
  return { redis: wrapped, cut: () => (cut = true) };
}

async function bump(redis: RedisLike, prefix: string, publish: boolean): Promise<void> {
  const generation = await redis.eval(INCR, [`${prefix}__generation`], []);
  if (publish) {
    await redis.publish(
      `${prefix}__invalidate`,
      JSON.stringify({ o: 'warden', c: 1, g: String(generation) }),
    );
  }
}

for (const factory of TOPOLOGIES) {
  describe(`cache coherence on ${factory.name} Redis`, { timeout: 120_000 }, () => {
    let topo: RedisTopology;
    let redis: RedisLike;
    let second: RedisLike;
    const caches: Cache[] = [];
    const newCache = async (prefix: string, client: RedisLike, options: Partial<CacheOptions> = {}) => {
      const cache = new Cache({ redis: client, prefix, l1: { maxEntries: 100, ttlMs: 60_000 }, ...options });
      caches.push(cache);
      await cache.start();
      return cache;
    };

    before(async () => {
      topo = await factory.start();
      redis = await topo.connect();
      second = await topo.connect();
    });
    after(async () => {
      await Promise.all(caches.map((c) => c.stop()));
      await topo.stop();
    });

    test("the daemon's message drops the L1 of every instance", async () => {
      const prefix = `t${randomBytes(4).toString('hex')}:cache:`;
      const a = await newCache(prefix, redis);
      const b = await newCache(prefix, second);
      await a.getOrSet('client:1', () => 'old');
      assert.equal(await b.getOrSet('client:1', () => 'unused'), 'old');
      // The value changes behind the caches' back (what a failover does to the truth): both
      // instances keep serving their L1 copy, which is what makes the message necessary.
      await redis.set(`${prefix}k:client:1`, JSON.stringify('new'));
      assert.equal(await a.getOrSet('client:1', () => 'unused'), 'old');
      assert.equal(await b.getOrSet('client:1', () => 'unused'), 'old');
      const l1Hits = a.stats().l1Hits + b.stats().l1Hits;
      assert.ok(l1Hits >= 2, 'both answered from L1');
      await bump(redis, prefix, true);
      for (const cache of [a, b]) {
        for (let i = 0; (await cache.getOrSet('client:1', () => 'unused')) !== 'new'; i++) {
          assert.ok(i < 200, 'the message did not drop the L1');
          await sleep(10);
        }
      }
    });

    test('an instance that missed the message stops serving its stale L1 within its bound', async () => {
      const prefix = `t${randomBytes(4).toString('hex')}:cache:`;
      const cut = withCuttableSubscription(second);
      const checkEveryMs = 300;
      const a = await newCache(prefix, redis, { coherence: { checkEveryMs } });
      const b = await newCache(prefix, cut.redis, { coherence: { checkEveryMs } });
      assert.equal(b.staleBoundMs, 2 * checkEveryMs);
      await a.getOrSet('k', () => 'old');
      assert.equal(await b.getOrSet('k', () => 'unused'), 'old');
      await redis.set(`${prefix}k:k`, JSON.stringify('new'));
      cut.cut();
      await bump(redis, prefix, true);
      const bumpedAt = Date.now();
      // The L1 may keep serving until the generation read notices: that is the bound.
      let served = await b.getOrSet('k', () => 'unused');
      while (served === 'old' && Date.now() - bumpedAt <= b.staleBoundMs!) {
        await sleep(10);
        served = await b.getOrSet('k', () => 'unused');
      }
      console.log(
        `# stale L1 served for ${Date.now() - bumpedAt} ms after a missed bump (bound ${b.staleBoundMs} ms)`,
      );
      // Once the bound has passed, the old value is never served, however late the timers ran:
      // an L1 is served only under a generation read sent less than the bound ago, so after the bump.
      await sleep(Math.max(0, bumpedAt + b.staleBoundMs! - Date.now()));
      assert.equal(await b.getOrSet('k', () => 'unused'), 'new');
    });

    test('an L1 whose generation cannot be confirmed is not served (Redis unreachable for reads)', async () => {
      const prefix = `t${randomBytes(4).toString('hex')}:cache:`;
      let failGets = false;
      const client = faulty(second, {
        get: (key: string) => (failGets ? Promise.reject(new Error('injected')) : second.get(key)),
      });
      const b = await newCache(prefix, client, { coherence: { checkEveryMs: 200 } });
      assert.equal(await b.getOrSet('k', () => 'v1'), 'v1');
      assert.equal(await b.getOrSet('k', () => 'unused'), 'v1');
      assert.equal(b.stats().l1Hits, 1);
      failGets = true;
      await sleep(b.staleBoundMs! + 50);
      // No confirmed generation for longer than the bound: the loader answers, not the old L1.
      assert.equal(await b.getOrSet('k', () => 'from loader'), 'from loader');
      assert.equal(b.stats().l1Hits, 1);
    });

    test('a load that straddles an invalidation is returned but cached nowhere', async () => {
      const prefix = `t${randomBytes(4).toString('hex')}:cache:`;
      const a = await newCache(prefix, redis);
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const loading = a.getOrSet('k', async () => {
        await gate; // read from the old primary, before the failover
        return 'from old primary';
      });
      await sleep(50);
      await bump(redis, prefix, true);
      await sleep(100); // the message arrives while the loader still runs
      release();
      assert.equal(await loading, 'from old primary');
      assert.equal(await redis.get(`${prefix}k:k`), null, 'nothing written to Redis');
      assert.equal(await a.getOrSet('k', () => 'fresh'), 'fresh', 'nothing kept in L1');
    });

    test('clear() keeps the generation key and what lives under it', async () => {
      const prefix = `t${randomBytes(4).toString('hex')}:cache:`;
      const a = await newCache(prefix, redis);
      await a.set('x', 1);
      await bump(redis, prefix, false);
      await redis.set(`${prefix}__generation:timeline`, '3');
      assert.equal(await a.clear(), 1);
      assert.equal(await redis.get(`${prefix}__generation`), '1');
      assert.equal(await redis.get(`${prefix}__generation:timeline`), '3');
    });
  });
}
