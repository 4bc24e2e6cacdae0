import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cache } from '../../src/cache/index.ts';
import { createRedis } from '../../src/redis/ioredis-adapter.ts';
import { LuaScript } from '../../src/redis/lua-script.ts';
import type { RedisLike } from '../../src/redis/redis-like.ts';
import { isDataLayerError } from '../../src/errors.ts';
import {
  startRedis,
  startRedisCluster,
  type TestRedis,
  type TestRedisCluster,
} from '../../../../test/harness/redis.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Fault-injecting wrapper: every call first waits for `gate` (Redis "slow" until the test opens
 * it). It offers no cancellable GET, so the cache takes its fallback (a promise of its own around
 * `get`).
 */
function slowed(redis: RedisLike, gate: Promise<void>): RedisLike {
  return new Proxy(redis, {
    get(target, property, receiver) {
      if (property === 'getCancellable') return undefined;
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        await gate;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe('cache with a failing standalone Redis', { timeout: 60_000 }, () => {
  let server: TestRedis;
  let redis: RedisLike;
  before(async () => {
    server = await startRedis();
    redis = createRedis({ port: server.port, commandTimeoutMs: 200 });
    await redis.connect();
  });
  after(async () => {
    await redis.quit();
    await server.stop();
  });

  test('a slow Redis costs at most the timeout: the loader result is returned and the error counted', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const cache = new Cache({ redis: slowed(redis, gate), prefix: 'slow:cache:', timeoutMs: 50 });
    // Redis answers nothing until the gate opens: a cache that waited for it would never return.
    assert.equal(await cache.getOrSet('k', () => 'loaded'), 'loaded');
    assert.ok(cache.stats().errors >= 1);
    open();
  });

  test('a GET held up by a busy server is cancelled at the timeout: the loader result is returned', async () => {
    const cache = new Cache({ redis, prefix: 'busy:cache:', timeoutMs: 50 });
    await cache.set('k', 'cached');
    const blocker = createRedis({ port: server.port, commandTimeoutMs: 30_000 });
    await blocker.connect();
    try {
      // A script that keeps the (single-threaded) server busy for 3 s (long enough that a loaded
      // machine cannot let it finish before the cache's 50 ms timeout fires).
      const busy = blocker.eval(
        new LuaScript(
          "local t = redis.call('TIME'); local start = t[1] * 1000000 + t[2]; " +
            "while true do local n = redis.call('TIME'); if n[1] * 1000000 + n[2] - start > 3000000 then break end end return 1",
        ),
        [],
        [],
      );
      let busyEnded = false;
      void busy.then(
        () => (busyEnded = true),
        () => (busyEnded = true),
      );
      await sleep(50); // the script is running
      assert.equal(await cache.getOrSet('k', () => 'loaded'), 'loaded');
      assert.equal(busyEnded, false, 'answered while the server was still busy, not after it');
      // the GET, and the write-back of the loaded value that the busy server did not take either
      assert.ok(cache.stats().errors >= 1);
      await busy.catch(() => undefined);
      // Once the server is back, the late reply was dropped, the loaded value was written after
      // the script, and the next call is a hit on it.
      assert.equal(await cache.getOrSet('k', () => 'loaded again'), 'loaded');
    } finally {
      await blocker.quit();
    }
  });

  test('a client whose get throws instead of rejecting: the loader result is returned and the error counted', async () => {
    const throwing = new Proxy(redis, {
      get(target, property, receiver) {
        if (property === 'get' || property === 'getCancellable')
          return () => {
            throw new Error('client bug');
          };
        const value = Reflect.get(target, property, receiver) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const cache = new Cache({ redis: throwing, prefix: 'throwing:cache:', timeoutMs: 50 });
    assert.equal(await cache.getOrSet('k', () => 'loaded'), 'loaded');
    assert.equal(cache.stats().errors, 1);
    assert.equal(cache.stats().loads, 1);
  });

  test('with Redis stopped, getOrSet keeps answering from loaders, counts errors, opens the breaker and recovers', async () => {
    const cache = new Cache({ redis, prefix: 'down:cache:', breaker: { failureThreshold: 3, openMs: 500 } });
    await cache.getOrSet('warm', () => 'w');
    await server.kill();
    let calls = 0;
    for (let i = 0; i < 20; i++) {
      assert.equal(await cache.getOrSet(`k${i}`, () => `v${++calls}`), `v${calls}`);
    }
    const stats = cache.stats();
    assert.equal(calls, 20);
    assert.ok(stats.errors >= 3, `errors ${stats.errors}`);
    assert.equal(stats.breaker, 'open');
    assert.equal(stats.breakerOpens, 1);
    // while open, Redis is not even tried: no further errors
    await cache.getOrSet('more', () => 1);
    assert.equal(cache.stats().errors, stats.errors);
    await assert.rejects(cache.delete('warm'), (e) => isDataLayerError(e, 'WARDEN_E_CACHE_UNAVAILABLE'));

    await server.restart();
    const deadline = Date.now() + 10_000;
    for (;;) {
      await cache.getOrSet('after', () => 'fresh');
      if (cache.stats().breaker === 'closed' && (await cache.get('after')) === 'fresh') break;
      assert.ok(Date.now() < deadline, 'cache did not recover after Redis came back');
      await sleep(100);
    }
  });
});

describe('cache on a Redis Cluster that loses a master', { timeout: 60_000 }, () => {
  let cluster: TestRedisCluster;
  let redis: RedisLike;
  before(async () => {
    cluster = await startRedisCluster();
    redis = createRedis({ clusterNodes: cluster.nodes, commandTimeoutMs: 300 });
    await redis.connect();
  });
  after(async () => {
    await redis.quit();
    await cluster.stop();
  });

  test('a master killed mid-test: the cache still answers, and after failover serves hits again', async () => {
    const cache = new Cache({ redis, prefix: 'fo:cache:', breaker: { failureThreshold: 5, openMs: 300 } });
    const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
    for (const key of keys) await cache.getOrSet(key, () => key);
    const [victim] = await cluster.masters();
    await cluster.killNode(victim!);
    // during failover every call still answers (from Redis or the loader)
    for (let round = 0; round < 5; round++) {
      for (const key of keys) assert.equal(await cache.getOrSet(key, () => key), key);
      await sleep(100);
    }
    await cluster.waitHealthy(20_000);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const before = cache.stats();
      for (const key of keys) assert.equal(await cache.getOrSet(key, () => key), key);
      const now = cache.stats();
      if (now.errors === before.errors && now.hits - before.hits === keys.length) break;
      assert.ok(Date.now() < deadline, 'cache did not return to serving hits after failover');
      await sleep(200);
    }
  });
});
