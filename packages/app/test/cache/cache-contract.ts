import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Cache, type CacheOptions } from '../../src/cache/index.ts';
import type { RedisLike } from '../../src/redis/redis-like.ts';
import type { RedisTopology, TopologyFactory } from '../../../../test/harness/redis.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail('condition not met in time');
    await sleep(20);
  }
}

/** The cache contract, run once per topology. */
export function cacheContract(factory: TopologyFactory): void {
  describe(`cache on ${factory.name} Redis`, { timeout: 60_000 }, () => {
    let topo: RedisTopology;
    let redis: RedisLike;
    const caches: Cache[] = [];
    const newCache = (options: Partial<CacheOptions> = {}, client = redis) => {
      const cache = new Cache({
        redis: client,
        prefix: `t${randomBytes(4).toString('hex')}:cache:`,
        ...options,
      });
      caches.push(cache);
      return cache;
    };

    before(async () => {
      topo = await factory.start();
      redis = await topo.connect();
    });
    after(async () => {
      await Promise.all(caches.map((c) => c.stop()));
      await topo.stop();
    });

    test('getOrSet loads on a miss and serves the stored value on a hit', async () => {
      const cache = newCache();
      let calls = 0;
      const loader = async () => ({ id: 42, name: 'Ada', calls: ++calls });
      assert.deepEqual(await cache.getOrSet('client:42', loader), { id: 42, name: 'Ada', calls: 1 });
      assert.deepEqual(await cache.getOrSet('client:42', loader), { id: 42, name: 'Ada', calls: 1 });
      assert.equal(calls, 1);
      const stats = cache.stats();
      assert.equal(stats.hits, 1);
      assert.equal(stats.misses, 1);
      assert.equal(stats.loads, 1);
      assert.equal(stats.errors, 0);
    });

    test('entries expire after their TTL', async () => {
      const cache = newCache({ ttlMs: 300 });
      let calls = 0;
      await cache.getOrSet('k', () => ++calls);
      assert.equal(await cache.getOrSet('k', () => ++calls), 1);
      await sleep(450);
      assert.equal(await cache.getOrSet('k', () => ++calls), 2);
      assert.equal(await cache.getOrSet('short', () => 'x', { ttlMs: 100 }), 'x');
      await sleep(200);
      assert.equal(await cache.get('short'), undefined);
    });

    test('a pluggable serializer stores what it produces', async () => {
      const cache = newCache({
        serializer: {
          serialize: (v) => `v1|${JSON.stringify(v)}`,
          deserialize: (t) => JSON.parse(t.slice(3)),
        },
      });
      await cache.getOrSet('a', () => [1, 2, 3]);
      assert.equal(await redis.get(`${cache.prefix}k:a`), 'v1|[1,2,3]');
      assert.deepEqual(await cache.get('a'), [1, 2, 3]);
    });

    test('delete by key and invalidation by tag remove exactly the affected entries', async () => {
      const cache = newCache();
      const loads: string[] = [];
      const load = (key: string, tags: string[]) =>
        cache.getOrSet(key, () => (loads.push(key), key.toUpperCase()), { tags });
      await load('client:1', ['client:1']);
      await load('loans-of:1', ['client:1', 'loan:7']);
      await load('client:2', ['client:2']);
      assert.equal(loads.length, 3);
      await cache.invalidateTags(['client:1']);
      assert.equal(await cache.get('client:1'), undefined);
      assert.equal(await cache.get('loans-of:1'), undefined);
      assert.equal(await cache.get('client:2'), 'CLIENT:2');
      await cache.delete('client:2');
      assert.equal(await cache.get('client:2'), undefined);
    });

    test('clear removes every key of the prefix with SCAN and leaves sessions and other prefixes intact', async () => {
      const cache = newCache();
      const other = newCache();
      for (let i = 0; i < 300; i++) await cache.getOrSet(`k${i}`, () => i, { tags: [`t${i % 7}`] });
      await other.getOrSet('keep', () => 'other');
      await redis.set('app:sess:s:{abc}', 'session-data');
      const deleted = await cache.clear();
      assert.ok(deleted >= 300, `deleted ${deleted}`);
      let left = 0;
      await redis.scan(`${cache.prefix}*`, (keys) => void (left += keys.length));
      assert.equal(left, 0);
      assert.equal(await redis.get('app:sess:s:{abc}'), 'session-data');
      assert.equal(await other.get('keep'), 'other');
    });

    test('concurrent misses of one key in a process share one loader call', async () => {
      const cache = newCache();
      let calls = 0;
      const loader = async () => {
        calls++;
        await sleep(50);
        return 'value';
      };
      const results = await Promise.all(Array.from({ length: 100 }, () => cache.getOrSet('hot', loader)));
      assert.equal(calls, 1);
      assert.ok(results.every((r) => r === 'value'));
      const stats = cache.stats();
      assert.equal(stats.misses, 100, 'every read that found no entry is a miss');
      assert.equal(stats.loads, 1);
    });

    test('a read that misses while the same key is being loaded joins that load', async () => {
      const cache = newCache();
      const loads: string[] = [];
      const first = cache.getOrSet('staggered', async () => {
        loads.push('first');
        await sleep(150);
        return 'from first';
      });
      await sleep(50);
      const second = cache.getOrSet('staggered', () => {
        loads.push('second');
        return 'from second';
      });
      assert.deepEqual(await Promise.all([first, second]), ['from first', 'from first']);
      assert.deepEqual(loads, ['first']);
      assert.equal(await cache.getOrSet('staggered', () => 'reloaded'), 'from first');
    });

    test('with the Redis lock, concurrent misses across instances share one loader call', async () => {
      const prefix = `t${randomBytes(4).toString('hex')}:cache:`;
      const second = await topo.connect();
      const a = newCache({ prefix, lock: { ttlMs: 2000, pollMs: 10 } });
      const b = newCache({ prefix, lock: { ttlMs: 2000, pollMs: 10 } }, second);
      let calls = 0;
      const loader = async () => {
        calls++;
        await sleep(100);
        return { v: 1 };
      };
      const results = await Promise.all([
        ...Array.from({ length: 20 }, () => a.getOrSet('hot', loader)),
        ...Array.from({ length: 20 }, () => b.getOrSet('hot', loader)),
      ]);
      assert.equal(calls, 1);
      assert.ok(results.every((r) => r.v === 1));
    });

    test('the L1 tier stays coherent across two instances through pub/sub', async () => {
      const prefix = `t${randomBytes(4).toString('hex')}:cache:`;
      const second = await topo.connect();
      const a = newCache({ prefix, l1: { maxEntries: 100 } });
      const b = newCache({ prefix, l1: { maxEntries: 100 } }, second);
      await Promise.all([a.start(), b.start()]);
      await a.getOrSet('client:9', () => 'v1', { tags: ['client:9'] });
      assert.equal(await b.getOrSet('client:9', () => 'unused'), 'v1');
      assert.equal(await b.getOrSet('client:9', () => 'unused'), 'v1');
      assert.ok(b.stats().l1Hits >= 1);

      await a.set('client:9', 'v2', { tags: ['client:9'] });
      await eventually(async () => (await b.getOrSet('client:9', () => 'reloaded')) === 'v2');

      await b.getOrSet('client:9', () => 'x');
      await a.invalidateTags(['client:9']);
      await eventually(
        async () => (await b.getOrSet('client:9', () => 'v3', { tags: ['client:9'] })) === 'v3',
      );

      await a.getOrSet('q', () => 1);
      await b.getOrSet('q', () => 2);
      await a.clear();
      await eventually(async () => (await b.getOrSet('q', () => 3)) === 3);
    });
  });
}
