import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { LuaScript } from '../../src/redis/lua-script.ts';
import type { RedisLike } from '../../src/redis/redis-like.ts';
import { RateLimiter, type RateLimiterOptions } from '../../src/ratelimit/index.ts';
import { isDataLayerError } from '../../src/errors.ts';
import type { RedisTopology, TopologyFactory } from '../../../../test/harness/redis.ts';

const HSET = new LuaScript(`return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/**
 * The contract is about Redis' decisions, so Redis must decide every request: with the default
 * 250 ms budget a loaded test machine made some calls time out and fail open (allowed, source
 * 'fail-open'), e.g. 104 allowed of a limit of 50. The fallbacks are tested in middleware.test.ts.
 */
const timeoutMs = 10_000;

/** The rate limiter contract, run once per topology. */
export function rateLimitContract(factory: TopologyFactory): void {
  describe(`rate limiter on ${factory.name} Redis`, { timeout: 60_000 }, () => {
    let topo: RedisTopology;
    let redis: RedisLike;
    const newLimiter = (options: Omit<RateLimiterOptions, 'redis'>, client = redis) =>
      new RateLimiter({
        redis: client,
        prefix: `t${randomBytes(4).toString('hex')}:rl:`,
        timeoutMs,
        ...options,
      });

    before(async () => {
      topo = await factory.start();
      redis = await topo.connect();
    });
    after(() => topo.stop());

    test('200 parallel consumers on a limit of 50 across two clients: exactly 50 allowed', async () => {
      const other = await topo.connect();
      const prefix = `t${randomBytes(4).toString('hex')}:rl:`;
      const a = new RateLimiter({ redis, prefix, limit: 50, windowMs: 60_000, timeoutMs });
      const b = new RateLimiter({ redis: other, prefix, limit: 50, windowMs: 60_000, timeoutMs });
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).consume('user:1')),
      );
      assert.equal(results.filter((r) => r.allowed).length, 50);
      assert.ok(results.every((r) => r.source === 'redis'));
      const rejected = results.find((r) => !r.allowed)!;
      assert.equal(rejected.remaining, 0);
      assert.ok(rejected.retryAfterMs > 0 && rejected.retryAfterMs <= 1200);
      assert.ok(rejected.resetMs > 50_000 && rejected.resetMs <= 60_000);
      // keys are independent
      assert.equal((await a.consume('user:2')).allowed, true);
    });

    test('remaining counts down, cost is honoured and the allowance replenishes over time', async () => {
      // One unit per second: the calls below may be a few hundred ms apart on a loaded machine
      // without a unit coming back between them.
      const limiter = newLimiter({ limit: 10, windowMs: 10_000, burst: 5 });
      assert.equal((await limiter.consume('k')).remaining, 4);
      assert.equal((await limiter.consume('k', 3)).remaining, 1);
      const tooMuch = await limiter.consume('k', 2);
      assert.equal(tooMuch.allowed, false);
      assert.equal(tooMuch.remaining, 1);
      assert.ok(tooMuch.retryAfterMs > 0 && tooMuch.retryAfterMs <= 1000);
      assert.equal((await limiter.consume('k')).allowed, true);
      assert.equal((await limiter.consume('k')).allowed, false);
      await sleep(2_500); // 1 s per unit
      const later = await limiter.consume('k');
      assert.equal(later.allowed, true);
      assert.ok(later.remaining >= 1);
    });

    test('a limiter key of another type raises WARDEN_E_STORE_WRONG_TYPE whatever the policy, without tripping the breaker', async () => {
      for (const onRedisDown of ['memory', 'fail-open', 'fail-closed'] as const) {
        const limiter = newLimiter({
          limit: 5,
          windowMs: 1000,
          onRedisDown,
          breaker: { failureThreshold: 2 },
        });
        const key = `${limiter.prefix}{victim}`;
        await redis.eval(HSET, [key], ['foreign', '1']);
        for (let i = 0; i < 3; i++) {
          await assert.rejects(
            limiter.consume('victim'),
            (e) =>
              isDataLayerError(e, 'WARDEN_E_STORE_WRONG_TYPE') &&
              e.details.type === 'hash' &&
              e.details.key === key,
          );
        }
        // Redis answered each time: the breaker stays closed and other keys are decided by Redis
        assert.equal((await limiter.consume('other')).source, 'redis');
      }
    });
  });
}
