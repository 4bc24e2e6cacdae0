import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { Cache } from '../../src/cache/index.ts';
import { isDataLayerError } from '../../src/errors.ts';
import { RateLimiter } from '../../src/ratelimit/index.ts';
import { createRedis } from '../../src/redis/ioredis-adapter.ts';
import type { RedisLike } from '../../src/redis/redis-like.ts';
import { SessionStore } from '../../src/sessions/index.ts';
import { startRedis, type TestRedis } from '../../../../test/harness/redis.ts';
import { promtoolCheck, scrape, valueOf } from './exposition.ts';

/**
 * One real Redis per test: the last step of each kills it (a real outage) to see errors,
 * fallbacks and the breaker in the metrics.
 */
describe('cache, session and rate limiter metrics against a real Redis', { timeout: 120_000 }, () => {
  let server: TestRedis;
  let redis: RedisLike;
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    await redis?.quit().catch(() => undefined);
    await server?.stop();
  });
  let down = false;
  const kill = async () => {
    down = true;
    await server.kill();
  };
  /** A client of a running server (restarted, empty, when the previous test killed it). */
  const fresh = async () => {
    await redis?.quit().catch(() => undefined);
    if (down) await server.restart();
    down = false;
    redis = createRedis({ port: server.port, commandTimeoutMs: 2000 });
    await redis.connect();
    return redis;
  };

  test('the cache counts hits per tier, misses, loads, errors and shows its breaker opening', async () => {
    await fresh();
    const registry = new Registry();
    const cache = new Cache({
      redis,
      prefix: 'm:cache:',
      l1: { maxEntries: 100 },
      breaker: { failureThreshold: 2, openMs: 60_000 },
      metrics: { registry, name: 'clients' },
    });
    await cache.start();
    const labels = { cache: 'clients' };
    try {
      let loads = 0;
      const loader = () => ({ id: 1, loads: ++loads });
      await cache.getOrSet('client:1', loader); // miss, load
      await cache.getOrSet('client:1', loader); // local hit
      await cache.getOrSet('client:2', loader); // miss, load
      await cache.delete('client:2');
      assert.equal(await cache.get('client:2'), undefined); // miss, no loader
      const other = new Cache({ redis, prefix: 'm:cache:' }); // the same keys, no local tier, no metrics
      await other.getOrSet('client:3', () => ({ id: 3 }));
      assert.deepEqual(await cache.getOrSet('client:3', loader), { id: 3 }); // a Redis hit
      let s = await scrape(registry);
      assert.equal(valueOf(s, 'warden_cache_hits_total', { ...labels, tier: 'local' }), 1);
      assert.equal(valueOf(s, 'warden_cache_hits_total', { ...labels, tier: 'redis' }), 1);
      assert.equal(valueOf(s, 'warden_cache_misses_total', labels), 3);
      assert.equal(valueOf(s, 'warden_cache_loads_total', labels), loads);
      assert.equal(valueOf(s, 'warden_cache_errors_total', labels), 0);
      assert.equal(valueOf(s, 'warden_cache_breaker_state', { ...labels, state: 'closed' }), 1);
      assert.equal(valueOf(s, 'warden_cache_breaker_state', { ...labels, state: 'open' }), 0);

      const check = await promtoolCheck(await registry.metrics());
      assert.equal(check.code, 0, `promtool check metrics: ${check.output}`);

      await kill();
      for (let i = 0; i < 3; i += 1) await cache.getOrSet(`down:${i}`, loader);
      s = await scrape(registry);
      assert.ok(valueOf(s, 'warden_cache_errors_total', labels) >= 2);
      assert.equal(valueOf(s, 'warden_cache_breaker_state', { ...labels, state: 'open' }), 1);
      assert.equal(valueOf(s, 'warden_cache_breaker_state', { ...labels, state: 'closed' }), 0);
      assert.equal(valueOf(s, 'warden_cache_breaker_opens_total', labels), 1);
      assert.equal(valueOf(s, 'warden_cache_loads_total', labels), loads);
    } finally {
      await cache.stop();
    }
    assert.equal(registry.getMetricsAsArray().length, 0, 'stop() takes the cache out of the registry');
  });

  test('the rate limiter counts allowed and limited requests, and fallbacks while Redis is down', async () => {
    await fresh();
    const registry = new Registry();
    const limiter = new RateLimiter({
      redis,
      prefix: 'm:rl:',
      limit: 3,
      windowMs: 60_000,
      timeoutMs: 5_000,
      breaker: { failureThreshold: 1, openMs: 60_000 },
      metrics: { registry },
    });
    const labels = { limiter: 'm:rl:' };
    const results = [];
    for (let i = 0; i < 5; i += 1) results.push((await limiter.consume('ip:1')).allowed);
    assert.deepEqual(results, [true, true, true, false, false]);
    let s = await scrape(registry);
    assert.equal(valueOf(s, 'warden_ratelimit_requests_total', { ...labels, result: 'allowed' }), 3);
    assert.equal(valueOf(s, 'warden_ratelimit_requests_total', { ...labels, result: 'limited' }), 2);
    assert.equal(valueOf(s, 'warden_ratelimit_fallbacks_total', { ...labels, policy: 'memory' }), 0);

    await kill();
    const down = await limiter.consume('ip:2');
    assert.equal(down.source, 'memory');
    await limiter.consume('ip:2');
    s = await scrape(registry);
    assert.equal(valueOf(s, 'warden_ratelimit_fallbacks_total', { ...labels, policy: 'memory' }), 2);
    assert.equal(valueOf(s, 'warden_ratelimit_requests_total', { ...labels, result: 'allowed' }), 5);
    assert.equal(valueOf(s, 'warden_ratelimit_breaker_state', { ...labels, state: 'open' }), 1);
    const check = await promtoolCheck(await registry.metrics());
    assert.equal(check.code, 0, `promtool check metrics: ${check.output}`);
    limiter.stopMetrics();
    assert.equal(registry.getMetricsAsArray().length, 0);
  });

  test('the session store counts creations, loads found and missing, ended sessions and outages', async () => {
    await fresh();
    const registry = new Registry();
    const store = new SessionStore({ redis, prefix: 'm:sess:', metrics: { registry, name: 'web' } });
    const labels = { store: 'web' };
    const { id } = await store.create({ cart: [] }, { userId: 'u1' });
    await store.create({ cart: [] }, { userId: 'u1' });
    assert.ok(await store.get(id));
    assert.equal(await store.get('no-such-session-id'), undefined);
    await store.destroy(id);
    assert.equal(await store.revokeUser('u1'), 1);
    let s = await scrape(registry);
    assert.equal(valueOf(s, 'warden_sessions_created_total', labels), 2);
    assert.equal(valueOf(s, 'warden_sessions_loads_total', { ...labels, result: 'found' }), 1);
    assert.equal(valueOf(s, 'warden_sessions_loads_total', { ...labels, result: 'missing' }), 1);
    assert.equal(valueOf(s, 'warden_sessions_ended_total', labels), 2);

    await kill();
    await assert.rejects(store.get(id), (e: unknown) =>
      isDataLayerError(e, 'WARDEN_E_SESSION_STORE_UNAVAILABLE'),
    );
    s = await scrape(registry);
    assert.equal(valueOf(s, 'warden_sessions_errors_total', { ...labels, operation: 'get' }), 1);
    const text = await registry.metrics();
    assert.ok(!text.includes(id), 'no session id in the metrics');
    const check = await promtoolCheck(text);
    assert.equal(check.code, 0, `promtool check metrics: ${check.output}`);
    store.stopMetrics();
    assert.equal(registry.getMetricsAsArray().length, 0);
  });
});
