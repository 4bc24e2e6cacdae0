import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import express, { type NextFunction, type Request, type Response } from 'express';
import session from 'express-session';
import { LuaScript } from '../../src/redis/lua-script.ts';
import { createRedis } from '../../src/redis/ioredis-adapter.ts';
import type { RedisLike } from '../../src/redis/redis-like.ts';
import { ExpressSessionStore } from '../../src/sessions/express-store.ts';
import { generateSessionId, sessionHandle, SessionStore } from '../../src/sessions/index.ts';
import { isDataLayerError, toDataLayerError } from '../../src/errors.ts';
import { startRedis, type TestRedis } from '../../../../test/harness/redis.ts';

declare module 'express-session' {
  interface SessionData {
    userId?: string;
    views?: number;
  }
}

const EXISTS = new LuaScript(`return redis.call('EXISTS', KEYS[1])`);
const PTTL = new LuaScript(`return redis.call('PTTL', KEYS[1])`);
const RPUSH = new LuaScript(`redis.call('DEL', KEYS[1]) return redis.call('RPUSH', KEYS[1], ARGV[1])`);

/** The session id inside an express-session cookie (`connect.sid=s%3A<id>.<signature>`). */
function sessionIdOf(cookie: string): string {
  const value = decodeURIComponent(cookie.slice(cookie.indexOf('=') + 1));
  return value.slice(2, value.lastIndexOf('.'));
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
    app.get('/fields', (req, res) => {
      const seen: string[] = [];
      for (const field in req.session) seen.push(field);
      res.json({ keys: Object.keys(req.session), seen, json: JSON.parse(JSON.stringify(req.session)) });
    });
    // the usual logout by cookie: expire it and tell the browser to drop it (session modified)
    app.post('/logout/expires', (req, res) => {
      delete req.session.userId;
      req.session.cookie.expires = new Date(0);
      res.clearCookie('connect.sid');
      res.json({ ok: true });
    });
    // the same without touching the session's data: express-session then calls touch, not set
    app.post('/logout/max-age', (req, res) => {
      req.session.cookie.maxAge = 0;
      res.clearCookie('connect.sid');
      res.json({ ok: true });
    });
    app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
      const e = toDataLayerError(error);
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

  test('no field of the store reaches req.session', async () => {
    const login = await call('POST', '/login/carol');
    await call('GET', '/views', login.cookie);
    const { body } = await call('GET', '/fields', login.cookie);
    assert.deepEqual((body.keys as string[]).sort(), ['cookie', 'userId', 'views']);
    assert.deepEqual((body.seen as string[]).sort(), ['cookie', 'userId', 'views']);
    assert.deepEqual(Object.keys(body.json as object).sort(), ['cookie', 'userId', 'views']);
    // and none is stored either
    const plain = new ExpressSessionStore({ redis, prefix: 'plain:sess:' });
    const loaded = await new Promise<unknown>((resolve, reject) => {
      plain.set('sid-1', { cookie: { originalMaxAge: null }, views: 1 } as never, (err) => {
        if (err) return reject(err);
        plain.get('sid-1', (e, value) => (e ? reject(e) : resolve(value)));
      });
    });
    assert.deepEqual(Object.keys(loaded as object).sort(), ['cookie', 'views']);
    assert.deepEqual(JSON.parse(JSON.stringify(loaded)), { cookie: { originalMaxAge: null }, views: 1 });
  });

  for (const route of ['/logout/expires', '/logout/max-age']) {
    test(`logging out by expiring the cookie (${route}) deletes the session in Redis`, async () => {
      const login = await call('POST', '/login/dave');
      assert.ok(login.cookie);
      const key = `web:sess:s:{${sessionHandle(sessionIdOf(login.cookie))}}`;
      assert.equal(await redis.eval(EXISTS, [key], []), 1);
      assert.deepEqual((await call('GET', '/views', login.cookie)).body, { views: 1, userId: 'dave' });
      const res = await fetch(base + route, { method: 'POST', headers: { cookie: login.cookie } });
      assert.equal(res.status, 200);
      // express-session holds the body's last byte until the store answered
      await res.json();
      assert.match(res.headers.get('set-cookie') ?? '', /Expires=Thu, 01 Jan 1970/);
      assert.equal(await redis.eval(EXISTS, [key], []), 0, 'the server-side session is gone');
      // a client that kept the cookie anyway gets a fresh, anonymous session
      assert.deepEqual((await call('GET', '/views', login.cookie)).body, { views: 1, userId: null });
    });
  }

  test('the session key never outlives a maxAge cookie, and reads never extend it past the cookie', async () => {
    const capped = new ExpressSessionStore({ redis, prefix: 'capped:sess:', idleTimeoutMs: 30 * 60_000 });
    const app = express();
    app.use(
      session({
        store: capped,
        genid: generateSessionId,
        secret: 's',
        resave: false,
        saveUninitialized: false,
        cookie: { maxAge: 5000 },
      }),
    );
    app.post('/login', (req, res) => {
      req.session.userId = 'erin';
      res.json({ ok: true });
    });
    app.get('/read', (req, res) => void res.json({ userId: req.session.userId ?? null }));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const login = await fetch(`${url}/login`, { method: 'POST' });
      await login.json(); // the save is done once the body is complete
      const setCookie = login.headers.get('set-cookie')!;
      const cookie = setCookie.split(';')[0]!;
      const expires = Date.parse(/Expires=([^;]+)/.exec(setCookie)![1]!);
      const key = `capped:sess:s:{${sessionHandle(sessionIdOf(cookie))}}`;
      const check = async () => {
        const remaining = expires - Date.now(); // before PTTL, so never smaller than the key's TTL
        const ttl = (await redis.eval(PTTL, [key], [])) as number;
        assert.ok(ttl > 0 && ttl <= remaining + 1, `key TTL ${ttl} ms, cookie ${remaining} ms`);
      };
      await check();
      // an unmodified read is a touch: express-session moves the cookie's expiry, the store follows
      assert.deepEqual(await (await fetch(`${url}/read`, { headers: { cookie } })).json(), {
        userId: 'erin',
      });
      const pttl = (await redis.eval(PTTL, [key], [])) as number;
      assert.ok(pttl > 0 && pttl <= 5000, `key TTL ${pttl} ms beyond the cookie's maxAge`);
    } finally {
      server.close();
    }
  });

  test('a session stored without a cookie cap whose saved cookie has expired is destroyed when read', async () => {
    // as written before the store capped sessions by their cookie: the expiry only in the data
    const sid = generateSessionId();
    const expires = new Date(Date.now() - 1000).toISOString();
    await store.sessions.save(
      sid,
      { cookie: { originalMaxAge: 1000, expires }, userId: 'gina' },
      {},
      'upsert',
    );
    const key = `web:sess:s:{${sessionHandle(sid)}}`;
    assert.equal(await redis.eval(EXISTS, [key], []), 1);
    const loaded = await new Promise((resolve, reject) =>
      store.get(sid, (err, value) => (err ? reject(err) : resolve(value))),
    );
    assert.equal(loaded, null);
    assert.equal(await redis.eval(EXISTS, [key], []), 0);
  });

  test('a session key of another type answers WARDEN_E_STORE_WRONG_TYPE, not 503', async () => {
    const login = await call('POST', '/login/frank');
    const key = `web:sess:s:{${sessionHandle(sessionIdOf(login.cookie!))}}`;
    await redis.eval(RPUSH, [key], ['foreign']);
    const res = await call('GET', '/views', login.cookie);
    assert.equal(res.status, 500);
    assert.equal(res.body.code, 'WARDEN_E_STORE_WRONG_TYPE');
    assert.equal(await redis.eval(EXISTS, [key], []), 1);
  });

  test('with Redis down, requests fail closed with WARDEN_E_SESSION_STORE_UNAVAILABLE', async () => {
    const login = await call('POST', '/login/bob');
    const direct = new SessionStore({ redis, prefix: 'direct:sess:' });
    const { id } = await direct.create({ a: 1 });
    await server.kill();
    const res = await call('GET', '/views', login.cookie);
    assert.equal(res.status, 503);
    assert.equal(res.body.code, 'WARDEN_E_SESSION_STORE_UNAVAILABLE');
    await assert.rejects(direct.get(id), (e) => isDataLayerError(e, 'WARDEN_E_SESSION_STORE_UNAVAILABLE'));
    await assert.rejects(direct.create({}), (e) => isDataLayerError(e, 'WARDEN_E_SESSION_STORE_UNAVAILABLE'));
    await assert.rejects(direct.revokeUser('bob'), (e) =>
      isDataLayerError(e, 'WARDEN_E_SESSION_STORE_UNAVAILABLE'),
    );
    await server.restart();
  });
});
