import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import express, { type NextFunction, type Request, type Response } from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { createRedis } from '../../src/redis/ioredis-adapter.ts';
import type { RedisLike } from '../../src/redis/redis-like.ts';
import { expressRateLimit } from '../../src/ratelimit/express.ts';
import { fastifyRateLimit } from '../../src/ratelimit/fastify.ts';
import { RateLimiter } from '../../src/ratelimit/index.ts';
import { isDataLayerError, toDataLayerError } from '../../src/errors.ts';
import { freePort } from '../../../../src/util/free-port.ts';
import { startRedis, type TestRedis } from '../../../../test/harness/redis.ts';

async function listen(app: express.Express): Promise<{ base: string; server: Server }> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('rate limit middleware and Redis outages', { timeout: 60_000 }, () => {
  let server: TestRedis;
  let redis: RedisLike;
  let http: Server;
  let expressBase: string;
  let fastify: FastifyInstance;
  let legacyFastify: FastifyInstance;

  before(async () => {
    server = await startRedis();
    redis = createRedis({ port: server.port, commandTimeoutMs: 300 });
    await redis.connect();

    const app = express();
    const limiter = new RateLimiter({ redis, prefix: 'mw:express:', limit: 3, windowMs: 60_000 });
    const closed = new RateLimiter({
      redis,
      prefix: 'mw:closed:',
      limit: 3,
      windowMs: 60_000,
      onRedisDown: 'fail-closed',
    });
    app.get(
      '/hello',
      expressRateLimit(limiter, { key: (req) => String(req.headers['x-user']) }),
      (_req, res) => {
        res.json({ hello: true });
      },
    );
    app.get('/closed', expressRateLimit(closed), (_req, res) => void res.json({ ok: true }));
    const legacy = new RateLimiter({ redis, prefix: 'mw:legacy:', limit: 3, windowMs: 60_000 });
    app.get('/legacy', expressRateLimit(legacy, { headers: 'legacy' }), (_req, res) => void res.json({}));
    app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
      const e = toDataLayerError(error);
      res.status(e.httpStatus).json({ code: e.code });
    });
    http = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => http.once('listening', resolve));
    expressBase = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

    fastify = Fastify();
    fastify.addHook(
      'onRequest',
      fastifyRateLimit(new RateLimiter({ redis, prefix: 'mw:fastify:', limit: 2, windowMs: 10_000 })),
    );
    fastify.get('/hello', async () => ({ hello: true }));
    legacyFastify = Fastify();
    legacyFastify.addHook(
      'onRequest',
      fastifyRateLimit(new RateLimiter({ redis, prefix: 'mw:fastify-legacy:', limit: 2, windowMs: 10_000 }), {
        headers: 'legacy',
      }),
    );
    legacyFastify.get('/hello', async () => ({ hello: true }));
  });
  after(async () => {
    http.close();
    await fastify.close();
    await legacyFastify.close();
    await redis.quit();
    await server.stop();
  });

  test('Express middleware sets RateLimit-Policy and RateLimit (draft-11) and answers 429 with Retry-After', async () => {
    const get = () => fetch(`${expressBase}/hello`, { headers: { 'x-user': 'alice' } });
    const seen: Array<[number, string | null, string | null, string | null]> = [];
    for (let i = 0; i < 4; i++) {
      const res = await get();
      seen.push([
        res.status,
        res.headers.get('ratelimit-policy'),
        res.headers.get('ratelimit'),
        res.headers.get('retry-after'),
      ]);
      assert.equal(res.headers.get('ratelimit-limit'), null, 'no legacy fields by default');
      assert.equal(res.headers.get('ratelimit-remaining'), null);
    }
    // 3 per 60 s: one request every 20 s, so t = 20 s per used request until the burst is back
    assert.deepEqual(seen, [
      [200, '"default";q=3;w=60', '"default";r=2;t=20', null],
      [200, '"default";q=3;w=60', '"default";r=1;t=40', null],
      [200, '"default";q=3;w=60', '"default";r=0;t=60', null],
      // rejected: t is the Retry-After delay, never before it (draft-11 section 6)
      [429, '"default";q=3;w=60', '"default";r=0;t=20', '20'],
    ]);
    const bob = await fetch(`${expressBase}/hello`, { headers: { 'x-user': 'bob' } });
    assert.equal(bob.status, 200);
  });

  test('Express middleware emits the legacy RateLimit-Limit/-Remaining/-Reset only when asked', async () => {
    const seen = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${expressBase}/legacy`);
      seen.push([
        res.status,
        res.headers.get('ratelimit-limit'),
        res.headers.get('ratelimit-remaining'),
        res.headers.get('ratelimit-reset'),
        res.headers.get('retry-after'),
      ]);
      assert.equal(res.headers.get('ratelimit'), null);
      assert.equal(res.headers.get('ratelimit-policy'), null);
    }
    assert.deepEqual(seen, [
      [200, '3', '2', '20', null],
      [200, '3', '1', '40', null],
      [200, '3', '0', '60', null],
      [429, '3', '0', '60', '20'],
    ]);
  });

  test('Fastify hook sets RateLimit-Policy and RateLimit (draft-11) and answers 429 with Retry-After', async () => {
    const seen = [];
    for (let i = 0; i < 3; i++) {
      const res = await fastify.inject({ method: 'GET', url: '/hello' });
      seen.push([
        res.statusCode,
        res.headers['ratelimit-policy'],
        res.headers['ratelimit'],
        res.headers['retry-after'],
      ]);
      assert.equal(res.headers['ratelimit-limit'], undefined);
    }
    assert.deepEqual(seen, [
      [200, '"default";q=2;w=10', '"default";r=1;t=5', undefined],
      [200, '"default";q=2;w=10', '"default";r=0;t=10', undefined],
      [429, '"default";q=2;w=10', '"default";r=0;t=5', '5'],
    ]);
    const legacy = [];
    for (let i = 0; i < 3; i++) {
      const res = await legacyFastify.inject({ method: 'GET', url: '/hello' });
      legacy.push([
        res.statusCode,
        res.headers['ratelimit-limit'],
        res.headers['ratelimit-remaining'],
        res.headers['ratelimit-reset'],
        res.headers['ratelimit'],
      ]);
    }
    assert.deepEqual(legacy, [
      [200, '2', '1', '5', undefined],
      [200, '2', '0', '10', undefined],
      [429, '2', '0', '10', undefined],
    ]);
  });

  test('with Redis down: the default limits in memory, fail-open (explicit) allows, fail-closed raises', async () => {
    const byDefault = new RateLimiter({ redis, prefix: 'down:default:', limit: 1, windowMs: 60_000 });
    const open = new RateLimiter({
      redis,
      prefix: 'down:open:',
      limit: 2,
      windowMs: 60_000,
      onRedisDown: 'fail-open',
    });
    const closed = new RateLimiter({
      redis,
      prefix: 'down:closed:',
      limit: 2,
      windowMs: 60_000,
      onRedisDown: 'fail-closed',
    });
    const memory = new RateLimiter({
      redis,
      prefix: 'down:mem:',
      limit: 2,
      windowMs: 60_000,
      onRedisDown: 'memory',
    });
    await server.kill();

    const defaults = [];
    for (let i = 0; i < 3; i++) defaults.push(await byDefault.consume('k'));
    assert.deepEqual(
      defaults.map((r) => [r.allowed, r.source]),
      [
        [true, 'memory'],
        [false, 'memory'],
        [false, 'memory'],
      ],
    );
    const opened = await Promise.all(Array.from({ length: 5 }, () => open.consume('k')));
    assert.ok(opened.every((r) => r.allowed && r.source === 'fail-open'));
    await assert.rejects(closed.consume('k'), (e) => isDataLayerError(e, 'WARDEN_E_RATE_LIMIT_UNAVAILABLE'));
    const mem = [];
    for (let i = 0; i < 4; i++) mem.push(await memory.consume('k'));
    assert.deepEqual(
      mem.map((r) => [r.allowed, r.source]),
      [
        [true, 'memory'],
        [true, 'memory'],
        [false, 'memory'],
        [false, 'memory'],
      ],
    );
    const res = await fetch(`${expressBase}/closed`);
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { code: string }).code, 'WARDEN_E_RATE_LIMIT_UNAVAILABLE');
    await server.restart();
  });

  test('behind an unreachable Redis, both middlewares hold the limit in memory unless fail-open is chosen', async () => {
    const nowhere = createRedis({ port: await freePort(), commandTimeoutMs: 300 });
    const app = express();
    const limiter = (prefix: string, onRedisDown?: 'fail-open') =>
      new RateLimiter({
        redis: nowhere,
        prefix,
        limit: 1,
        windowMs: 60_000,
        ...(onRedisDown ? { onRedisDown } : {}),
      });
    app.get('/default', expressRateLimit(limiter('nowhere:default:')), (_req, res) => void res.json({}));
    app.get(
      '/open',
      expressRateLimit(limiter('nowhere:open:', 'fail-open')),
      (_req, res) => void res.json({}),
    );
    const { base, server: http } = await listen(app);
    const f = Fastify();
    f.addHook('onRequest', fastifyRateLimit(limiter('nowhere:fastify:')));
    f.get('/', async () => ({}));
    const fOpen = Fastify();
    fOpen.addHook('onRequest', fastifyRateLimit(limiter('nowhere:fastify-open:', 'fail-open')));
    fOpen.get('/', async () => ({}));
    try {
      const statuses = async (get: () => Promise<number>) => {
        const out = [];
        for (let i = 0; i < 3; i++) out.push(await get());
        return out;
      };
      assert.deepEqual(await statuses(async () => (await fetch(`${base}/default`)).status), [200, 429, 429]);
      assert.deepEqual(await statuses(async () => (await fetch(`${base}/open`)).status), [200, 200, 200]);
      assert.deepEqual(
        await statuses(async () => (await f.inject({ url: '/' })).statusCode),
        [200, 429, 429],
      );
      assert.deepEqual(
        await statuses(async () => (await fOpen.inject({ url: '/' })).statusCode),
        [200, 200, 200],
      );
      // the in-memory decision carries the same fields
      const res = await fetch(`${base}/default`);
      assert.equal(res.headers.get('ratelimit-policy'), '"default";q=1;w=60');
      assert.match(res.headers.get('ratelimit') ?? '', /^"default";r=0;t=\d+$/);
    } finally {
      http.close();
      await f.close();
      await fOpen.close();
      await nowhere.quit();
    }
  });
});
