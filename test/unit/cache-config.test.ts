import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cacheSectionSchema,
  resolveCachePlan,
  type CacheSection,
} from '../../src/cache-coherence/cache-config.ts';
import { cleanReason } from '../../src/cache-coherence/cache-invalidator.ts';
import { isWardenError } from '../../src/errors.ts';

const base: CacheSection = { redis: { url: 'redis://cache.internal:6380/2' }, prefixes: ['app:cache:'] };
const refused = (section: CacheSection, field: string) =>
  assert.throws(
    () => resolveCachePlan(cacheSectionSchema.parse(section), 'daemon.cache', '/etc/warden'),
    (error: unknown) => isWardenError(error, 'WARDEN_E_CONFIG_INVALID') && error.details.field === field,
  );

test('the cache section resolves with the defaults the library uses', () => {
  const plan = resolveCachePlan(
    { ...base, redis: { ...base.redis, passwordFile: 'redis.pw' } },
    'daemon.cache',
    '/etc/warden',
  );
  assert.deepEqual(plan.redis, {
    host: 'cache.internal',
    port: 6380,
    db: 2,
    tls: false,
    cluster: false,
    passwordFile: '/etc/warden/redis.pw',
  });
  assert.equal(plan.channel, 'app:cache:__invalidate');
  assert.equal(plan.generationKey, 'app:cache:__generation');
  assert.equal(plan.timelinePollMs, 5000);
  assert.equal(plan.batchSize, 500);
});

test('a password in the Redis URL is refused (it belongs in a file or the environment)', () => {
  refused({ ...base, redis: { url: 'redis://:s3cret@cache:6379' } }, 'daemon.cache.redis.url');
});

test('a prefix that overlaps the session prefix is refused, either way round', () => {
  refused({ ...base, prefixes: ['app:'], sessionPrefix: 'app:sess:' }, 'daemon.cache.prefixes.0');
  refused(
    { ...base, prefixes: ['app:cache:', 'app:sess:x'], sessionPrefix: 'app:sess:' },
    'daemon.cache.prefixes.1',
  );
});

test('other malformed Redis settings are refused with their field', () => {
  refused({ ...base, redis: { url: 'http://cache:6379' } }, 'daemon.cache.redis.url');
  refused({ ...base, redis: { url: 'redis://cache:6379/x' } }, 'daemon.cache.redis.url');
  refused({ ...base, redis: { url: 'redis://cache:6379/1', cluster: true } }, 'daemon.cache.redis.url');
  refused(
    { ...base, redis: { url: 'redis://cache', passwordFile: 'a', passwordEnv: 'B' } },
    'daemon.cache.redis.passwordFile',
  );
  assert.throws(() => cacheSectionSchema.parse({ ...base, prefixes: [] }));
  assert.throws(() => cacheSectionSchema.parse({ ...base, extra: 1 }));
});

test('an operator reason loses its control characters and is capped', () => {
  assert.equal(cleanReason('cut over\n\u001b[31mfake log line'), 'cut over  [31mfake log line');
  assert.equal(cleanReason('x'.repeat(500)).length, 200);
});
