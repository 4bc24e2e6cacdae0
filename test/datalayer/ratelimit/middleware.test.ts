import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import express, { type NextFunction, type Request, type Response } from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { createRedis } from '../../../src/datalayer/redis/ioredis-adapter.ts';
import type { RedisLike } from '../../../src/datalayer/redis/redis-like.ts';
import { expressRateLimit, fastifyRateLimit, RateLimiter } from '../../../src/datalayer/ratelimit/index.ts';
import { isWardenError, toWardenError } from '../../../src/errors.ts';
import { startRedis, type TestRedis } from '../../harness/redis.ts';

describe('rate limit middleware and Redis outages', { timeout: 60_000 }, () => {
  let server: TestRedis;
  let redis: RedisLike;
  let http: Server;
  let expressBase: string;
  let fastify: FastifyInstance;

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
    app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
      const e = toWardenError(error);
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
  });
  after(async () => {
    http.close();
    await fastify.close();
    await redis.quit();
    await server.stop();
  });

  test('Express middleware sets RateLimit headers and answers 429 with Retry-After', async () => {
    const get = () => fetch(`${expressBase}/hello`, { headers: { 'x-user': 'alice' } });
    const statuses: number[] = [];
    let last: globalThis.Response | undefined;
    for (let i = 0; i < 4; i++) {
      last = await get();
      statuses.push(last.status);
      if (i === 0) {
        assert.equal(last.headers.get('ratelimit-limit'), '3');
        assert.equal(last.headers.get('ratelimit-remaining'), '2');
        assert.equal(last.headers.get('ratelimit-reset'), '20');
        assert.equal(last.headers.get('retry-after'), null);
      }
    }
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.equal(last!.headers.get('ratelimit-remaining'), '0');
    assert.equal(last!.headers.get('retry-after'), '20');
    const bob = await fetch(`${expressBase}/hello`, { headers: { 'x-user': 'bob' } });
    assert.equal(bob.status, 200);
  });

  test('Fastify hook sets RateLimit headers and answers 429 with Retry-After', async () => {
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 3; i++) {
      last = await fastify.inject({ method: 'GET', url: '/hello' });
      statuses.push(last.statusCode);
      if (i === 0) {
        assert.equal(last.headers['ratelimit-limit'], '2');
        assert.equal(last.headers['ratelimit-remaining'], '1');
        assert.equal(last.headers['ratelimit-reset'], '5');
      }
    }
    assert.deepEqual(statuses, [200, 200, 429]);
    assert.equal(last!.headers['retry-after'], '5');
    assert.equal(last!.headers['ratelimit-remaining'], '0');
  });

  test('with Redis down: fail-open allows, fail-closed raises, memory keeps limiting per process', async () => {
    const open = new RateLimiter({ redis, prefix: 'down:open:', limit: 2, windowMs: 60_000 });
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

    const opened = await Promise.all(Array.from({ length: 5 }, () => open.consume('k')));
    assert.ok(opened.every((r) => r.allowed && r.source === 'fail-open'));
    await assert.rejects(closed.consume('k'), (e) => isWardenError(e, 'WARDEN_E_RATE_LIMIT_UNAVAILABLE'));
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
});
