import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createRedis } from '../../src/redis/ioredis-adapter.ts';
import {
  rateLimitField,
  rateLimitHeaders,
  rateLimitPolicyField,
  RateLimiter,
  type RateLimitPolicy,
  type RateLimitResult,
} from '../../src/ratelimit/index.ts';
import { isDataLayerError } from '../../src/errors.ts';

/**
 * Exact field values from the examples of draft-ietf-httpapi-ratelimit-headers-11 (23 May 2026):
 * sections 3.2 and 4.2, appendix B.1.4 (throttled) and B.2.1 (policy and limit together).
 */
describe('RateLimit-Policy and RateLimit fields (draft-11)', () => {
  // never connected: the limiters here only derive their policy (no I/O in constructors)
  const redis = createRedis({ port: 1 });
  after(() => redis.quit());

  const policy = (name: string, quota: number, windowSeconds: number): RateLimitPolicy => ({
    name,
    quota,
    windowSeconds,
  });
  const result = (p: RateLimitPolicy, fields: Partial<RateLimitResult>): RateLimitResult => ({
    allowed: true,
    limit: p.quota,
    remaining: 0,
    resetMs: 0,
    retryAfterMs: 0,
    source: 'redis',
    policy: p,
    ...fields,
  });

  test('a limiter of 100 per 10 s advertises "default";q=100;w=10 (section 3.2)', () => {
    const limiter = new RateLimiter({ redis, limit: 100, windowMs: 10_000 });
    assert.equal(rateLimitPolicyField(limiter.policy), '"default";q=100;w=10');
  });

  test('50 left, full again in 30 s: "default";r=50;t=30 (sections 4 and 4.2)', () => {
    const p = policy('default', 100, 60);
    assert.equal(rateLimitField(result(p, { remaining: 50, resetMs: 30_000 })), '"default";r=50;t=30');
    // t is whole seconds, rounded up: never a shorter effective window than the real one
    assert.equal(rateLimitField(result(p, { remaining: 50, resetMs: 29_001 })), '"default";r=50;t=30');
  });

  test('B.2.1: "fixedwindow";q=100;w=60 with "fixedwindow";r=99;t=50', () => {
    const limiter = new RateLimiter({ redis, limit: 100, windowMs: 60_000, policyName: 'fixedwindow' });
    const headers = rateLimitHeaders(result(limiter.policy, { remaining: 99, resetMs: 50_000 }));
    assert.deepEqual(headers, {
      'RateLimit-Policy': '"fixedwindow";q=100;w=60',
      RateLimit: '"fixedwindow";r=99;t=50',
    });
  });

  test('B.1.4 throttled: "default";r=0;t=5 with Retry-After 5 (t never ends after Retry-After)', () => {
    const p = policy('default', 100, 60);
    const headers = rateLimitHeaders(
      result(p, { allowed: false, remaining: 0, resetMs: 60_000, retryAfterMs: 4_200 }),
    );
    assert.equal(headers['RateLimit'], '"default";r=0;t=5');
    assert.equal(headers['Retry-After'], '5');
  });

  test('legacy and both formats; none keeps only Retry-After', () => {
    const p = policy('default', 10, 60);
    const rejected = result(p, {
      allowed: false,
      limit: 10,
      remaining: 0,
      resetMs: 60_000,
      retryAfterMs: 6_000,
    });
    assert.deepEqual(rateLimitHeaders(rejected, 'legacy'), {
      'RateLimit-Limit': '10',
      'RateLimit-Remaining': '0',
      'RateLimit-Reset': '60',
      'Retry-After': '6',
    });
    assert.deepEqual(Object.keys(rateLimitHeaders(rejected, 'both')).sort(), [
      'RateLimit',
      'RateLimit-Limit',
      'RateLimit-Policy',
      'RateLimit-Remaining',
      'RateLimit-Reset',
      'Retry-After',
    ]);
    assert.deepEqual(rateLimitHeaders(rejected, 'none'), { 'Retry-After': '6' });
  });

  test('the policy name is a Structured Field String: quotes and backslashes escaped, controls refused', () => {
    const limiter = new RateLimiter({ redis, limit: 5, windowMs: 1_500, policyName: 'per "user" \\ ip' });
    // a 1.5 s window has no whole-second form; 2 s advertises a stricter policy, never a looser one
    assert.equal(rateLimitPolicyField(limiter.policy), '"per \\"user\\" \\\\ ip";q=5;w=2');
    for (const policyName of ['tab\there', 'naïve', 'line\nbreak']) {
      assert.throws(
        () => new RateLimiter({ redis, limit: 5, windowMs: 1_000, policyName }),
        (e) => isDataLayerError(e, 'WARDEN_E_CONFIG_INVALID'),
      );
    }
  });
});
