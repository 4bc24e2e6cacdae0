import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import express, { type NextFunction, type Request, type Response } from 'express';
import session from 'express-session';
import { createRedis } from '../../../src/datalayer/redis/ioredis-adapter.ts';
import type { RedisLike } from '../../../src/datalayer/redis/redis-like.ts';
import {
  ExpressSessionStore,
  generateSessionId,
  SessionStore,
} from '../../../src/datalayer/sessions/index.ts';
import { isWardenError, toWardenError } from '../../../src/errors.ts';
import { startRedis, type TestRedis } from '../../harness/redis.ts';

declare module 'express-session' {
  interface SessionData {
    userId?: string;
    views?: number;
  }
}

describe('express-session store', { timeout: 60_000 }, () => {
  let server: TestRedis;
  let redis: RedisLike;
  let http: Server;
  let base: string;
  let store: ExpressSessionStore;

  before(async () => {
    server = await startRedis();
    redis = createRedis({ port: server.port, commandTimeoutMs: 300 });
    await redis.connect();
    store = new ExpressSessionStore({ redis, prefix: 'web:sess:', encryption: true });
    const app = express();
    app.use(
      session({
        store,
        genid: generateSessionId,
        secret: 'cookie-secret',
        resave: false,
        saveUninitialized: false,
      }),
    );
    app.post('/login/:user', (req, res) => {
      req.session.userId = req.params.user;
      res.json({ ok: true });
    });
    app.get('/views', (req, res) => {
      req.session.views = (req.session.views ?? 0) + 1;
      res.json({ views: req.session.views, userId: req.session.userId ?? null });
    });
    app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
      const e = toWardenError(error);
      res.status(e.httpStatus).json({ code: e.code });
    });
    http = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => http.once('listening', resolve));
    base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  });
  after(async () => {
    http.close();
    await redis.quit();
    await server.stop();
  });

  const call = async (method: string, path: string, cookie?: string) => {
    const res = await fetch(base + path, { method, headers: cookie ? { cookie } : {} });
    const setCookie = res.headers.get('set-cookie')?.split(';')[0];
    return {
      status: res.status,
      body: (await res.json()) as Record<string, unknown>,
      cookie: setCookie ?? cookie,
    };
  };

  test('express-session keeps, counts and revokes sessions through the store', async () => {
    const login = await call('POST', '/login/alice');
    const other = await call('POST', '/login/alice');
    assert.ok(login.cookie);
    assert.deepEqual((await call('GET', '/views', login.cookie)).body, { views: 1, userId: 'alice' });
    assert.deepEqual((await call('GET', '/views', login.cookie)).body, { views: 2, userId: 'alice' });
    assert.equal(await store.sessions.countUser('alice'), 2);
    const length = await new Promise<number | undefined>((resolve, reject) =>
      store.length((err, n) => (err ? reject(err) : resolve(n))),
    );
    assert.equal(length, 2);
    assert.equal(await store.sessions.revokeUser('alice'), 2);
    assert.deepEqual((await call('GET', '/views', login.cookie)).body, { views: 1, userId: null });
    assert.deepEqual((await call('GET', '/views', other.cookie)).body, { views: 1, userId: null });
  });

  test('with Redis down, requests fail closed with WARDEN_E_SESSION_STORE_UNAVAILABLE', async () => {
    const login = await call('POST', '/login/bob');
    const direct = new SessionStore({ redis, prefix: 'direct:sess:' });
    const { id } = await direct.create({ a: 1 });
    await server.kill();
    const res = await call('GET', '/views', login.cookie);
    assert.equal(res.status, 503);
    assert.equal(res.body.code, 'WARDEN_E_SESSION_STORE_UNAVAILABLE');
    await assert.rejects(direct.get(id), (e) => isWardenError(e, 'WARDEN_E_SESSION_STORE_UNAVAILABLE'));
    await assert.rejects(direct.create({}), (e) => isWardenError(e, 'WARDEN_E_SESSION_STORE_UNAVAILABLE'));
    await assert.rejects(direct.revokeUser('bob'), (e) =>
      isWardenError(e, 'WARDEN_E_SESSION_STORE_UNAVAILABLE'),
    );
    await server.restart();
  });
});
