import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { LuaScript } from '../../src/redis/lua-script.ts';
import type { RedisLike } from '../../src/redis/redis-like.ts';
import { SessionStore, sessionHandle, type SessionStoreOptions } from '../../src/sessions/index.ts';
import { isDataLayerError } from '../../src/errors.ts';
import type { RedisTopology, TopologyFactory } from '../../../../test/harness/redis.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const HGET = new LuaScript(`return redis.call('HGET', KEYS[1], ARGV[1])`);
const HSET = new LuaScript(`return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])`);
const PTTL = new LuaScript(`return redis.call('PTTL', KEYS[1])`);
const EXISTS = new LuaScript(`return redis.call('EXISTS', KEYS[1])`);
const RPUSH = new LuaScript(`redis.call('DEL', KEYS[1]) return redis.call('RPUSH', KEYS[1], ARGV[1])`);
const SETSTR = new LuaScript(`redis.call('DEL', KEYS[1]) return redis.call('SET', KEYS[1], ARGV[1])`);
const wrongType = (type: string) => (e: unknown) =>
  isDataLayerError(e, 'WARDEN_E_STORE_WRONG_TYPE') && e.details.type === type;

/** The session store contract, run once per topology. */
export function sessionContract(factory: TopologyFactory): void {
  describe(`sessions on ${factory.name} Redis`, { timeout: 60_000 }, () => {
    let topo: RedisTopology;
    let redis: RedisLike;
    const newStore = (options: Partial<SessionStoreOptions> = {}) =>
      new SessionStore({ redis, prefix: `t${randomBytes(4).toString('hex')}:sess:`, ...options });

    before(async () => {
      topo = await factory.start();
      redis = await topo.connect();
    });
    after(() => topo.stop());

    test('sessions round-trip under unguessable ids that Redis never sees', async () => {
      const store = newStore();
      const payload = { cart: 'x'.repeat(2000), n: 1 };
      const { id, info } = await store.create(payload, { userId: 'u1' });
      assert.match(id, /^[A-Za-z0-9_-]{43}$/);
      assert.notEqual((await store.create({})).id, id);
      assert.deepEqual((await store.get(id))?.data, payload);
      assert.equal(info.userId, 'u1');
      const key = `${store.prefix}s:{${sessionHandle(id)}}`;
      assert.ok(((await redis.eval(HGET, [key], ['d'])) as string).includes('xxxx'));
      let keys: string[] = [];
      await redis.scan(`${store.prefix}*`, (batch) => void keys.push(...batch));
      assert.ok(keys.every((k) => !k.includes(id)));
      assert.ok(await store.save(id, { n: 2 }));
      assert.deepEqual((await store.get(id))?.data, { n: 2 });
      await store.destroy(id);
      assert.equal(await store.get(id), undefined);
      assert.equal(await store.save(id, { n: 3 }), undefined, 'a destroyed session is not resurrected');
      keys = [];
      await redis.scan(`${store.prefix}s:*`, (batch) => void keys.push(...batch));
      assert.equal(keys.length, 1);
    });

    test('a session expires after the idle timeout', async () => {
      const store = newStore({ idleTimeoutMs: 800, absoluteLifetimeMs: 10_000 });
      const { id } = await store.create({ a: 1 });
      await sleep(400);
      assert.ok(await store.get(id));
      await sleep(500);
      assert.ok(await store.get(id), 'the read at 400 ms slid the idle window');
      await sleep(1000);
      assert.equal(await store.get(id), undefined);
    });

    test('touch extends the idle window but never the absolute lifetime', async () => {
      const store = newStore({ idleTimeoutMs: 800, absoluteLifetimeMs: 1800 });
      const { id, info } = await store.create({ a: 1 });
      const key = `${store.prefix}s:{${sessionHandle(id)}}`;
      const started = Date.now();
      while (Date.now() - started < 1500) {
        assert.equal(await store.touch(id), true);
        const pttl = (await redis.eval(PTTL, [key], [])) as number;
        assert.ok(
          pttl <= info.expiresAt.getTime() - Date.now() + 50,
          `pttl ${pttl} beyond the absolute expiry`,
        );
        await sleep(300);
      }
      await sleep(Math.max(0, info.expiresAt.getTime() - Date.now()) + 100);
      assert.equal(await store.touch(id), false);
      assert.equal(await store.get(id), undefined);
    });

    test('a continuously used session still ends at its absolute lifetime', async () => {
      const store = newStore({ idleTimeoutMs: 5000, absoluteLifetimeMs: 1000 });
      const { id } = await store.create({ a: 1 });
      assert.ok(await store.get(id));
      await sleep(600);
      assert.ok(await store.save(id, { a: 2 }));
      await sleep(500);
      assert.equal(await store.get(id), undefined);
      assert.equal(await store.save(id, { a: 3 }), undefined);
    });

    test('sessions are counted, listed and revoked per user', async () => {
      const store = newStore();
      const u1 = await Promise.all([1, 2, 3].map((n) => store.create({ n }, { userId: 'user-1' })));
      const u2 = await store.create({ n: 4 }, { userId: 'user-2' });
      await store.create({ anonymous: true });
      assert.equal(await store.countUser('user-1'), 3);
      assert.equal(await store.count(), 5);
      const listed = await store.listUser('user-1');
      assert.deepEqual(listed.map((s) => s.handle).sort(), u1.map((s) => s.info.handle).sort());
      assert.equal(await store.revoke(listed[0]!.handle), true);
      assert.equal(await store.countUser('user-1'), 2);
      assert.equal(await store.revokeUser('user-1'), 2);
      for (const s of u1) assert.equal(await store.get(s.id), undefined);
      assert.equal(await store.countUser('user-1'), 0);
      assert.ok(await store.get(u2.id));
      assert.equal(await store.count(), 2);
    });

    test('encrypted session data is unreadable in Redis and tampering is detected', async () => {
      const store = newStore({ encryption: { salt: 'pepper' } });
      const a = await store.create({ secret: 'iban DE89 3704 0044 0532 0130 00' });
      const b = await store.create({ secret: 'other' });
      const keyA = `${store.prefix}s:{${sessionHandle(a.id)}}`;
      const keyB = `${store.prefix}s:{${sessionHandle(b.id)}}`;
      const stored = (await redis.eval(HGET, [keyA], ['d'])) as string;
      assert.ok(!stored.includes('iban') && !stored.includes('DE89'));
      assert.deepEqual((await store.get(a.id))?.data, { secret: 'iban DE89 3704 0044 0532 0130 00' });
      // a store with another salt (or without the id) cannot read it
      const otherSalt = new SessionStore({ redis, prefix: store.prefix, encryption: { salt: 'other' } });
      await assert.rejects(otherSalt.get(a.id), (e) => isDataLayerError(e, 'WARDEN_E_SESSION_INVALID'));
      // flip one character of the ciphertext
      const last = stored.at(-2) === 'A' ? 'B' : 'A';
      await redis.eval(HSET, [keyA], ['d', stored.slice(0, -2) + last + stored.slice(-1)]);
      await assert.rejects(store.get(a.id), (e) => isDataLayerError(e, 'WARDEN_E_SESSION_INVALID'));
      // move b's ciphertext under a's key
      await redis.eval(HSET, [keyA], ['d', (await redis.eval(HGET, [keyB], ['d'])) as string]);
      await assert.rejects(store.get(a.id), (e) => isDataLayerError(e, 'WARDEN_E_SESSION_INVALID'));
      assert.deepEqual((await store.get(b.id))?.data, { secret: 'other' });
    });

    test('a cookie expiry in the past destroys the session on save and on touch', async () => {
      const store = newStore();
      const a = await store.create({ n: 1 }, { userId: 'leaver' });
      const b = await store.create({ n: 2 });
      const keyA = `${store.prefix}s:{${a.info.handle}}`;
      const keyB = `${store.prefix}s:{${b.info.handle}}`;
      // logout by cookie: the app saves the session with its cookie set to expire in the past
      assert.equal(await store.save(a.id, { n: 1 }, { cookieExpiresAt: new Date(0) }), undefined);
      assert.equal(await redis.eval(EXISTS, [keyA], []), 0);
      assert.equal(await store.get(a.id), undefined);
      assert.equal(await store.countUser('leaver'), 0);
      assert.equal(await store.touch(b.id, { cookieExpiresAt: Date.now() - 1 }), false);
      assert.equal(await redis.eval(EXISTS, [keyB], []), 0);
      assert.equal(await store.get(b.id), undefined);
      await assert.rejects(store.create({}, { cookieExpiresAt: new Date(Date.now() - 1000) }), (e) =>
        isDataLayerError(e, 'WARDEN_E_SESSION_INVALID'),
      );
    });

    test('the key never outlives the cookie: TTL = min(idle, cookie remaining), kept until lifted', async () => {
      const store = newStore({ idleTimeoutMs: 30 * 60_000 });
      const cookieAt = Date.now() + 1500;
      const { id, info } = await store.create({ a: 1 }, { cookieExpiresAt: cookieAt });
      assert.ok(info.cookieExpiresAt);
      const key = `${store.prefix}s:{${info.handle}}`;
      const pttl = async () => {
        const remaining = cookieAt - Date.now(); // taken before the PTTL call, so never smaller than it
        const ttl = (await redis.eval(PTTL, [key], [])) as number;
        // A few ms of slack between Redis' command clock (cached per event-loop turn) and Node's.
        assert.ok(ttl > 0 && ttl <= remaining + 10, `pttl ${ttl} beyond the cookie's ${remaining} ms`);
      };
      await pttl();
      // a read, a touch and a save that say nothing about the cookie keep its cap
      assert.ok(await store.get(id));
      await pttl();
      assert.equal(await store.touch(id), true);
      await pttl();
      assert.ok(await store.save(id, { a: 2 }));
      await pttl();
      assert.equal(
        (await store.info(info.handle))?.cookieExpiresAt?.getTime(),
        info.cookieExpiresAt.getTime(),
      );
      await sleep(Math.max(0, cookieAt - Date.now()) + 100);
      assert.equal(await store.get(id), undefined, 'ended with the cookie, long before the idle timeout');

      // a later cookie moves the cap; null (a browser-session cookie) lifts it
      const other = await store.create({ b: 1 }, { cookieExpiresAt: Date.now() + 1000 });
      const otherKey = `${store.prefix}s:{${other.info.handle}}`;
      assert.equal(await store.touch(other.id, { cookieExpiresAt: Date.now() + 60_000 }), true);
      const moved = (await redis.eval(PTTL, [otherKey], [])) as number;
      assert.ok(moved > 1000 && moved <= 60_000, `pttl ${moved}`);
      assert.ok(await store.save(other.id, { b: 2 }, { cookieExpiresAt: null }));
      assert.ok(((await redis.eval(PTTL, [otherKey], [])) as number) > 60_000);
      assert.equal((await store.info(other.info.handle))?.cookieExpiresAt, undefined);
    });

    test('a command delayed on its way to Redis does not stretch the cookie cap', async () => {
      // fault injection: every eval waits 300 ms after the store measured the cookie's remaining time
      const delayed: RedisLike = Object.create(redis, {
        eval: {
          value: async (...args: Parameters<RedisLike['eval']>) => {
            await sleep(300);
            return redis.eval(...args);
          },
        },
      }) as RedisLike;
      const store = newStore({ redis: delayed, idleTimeoutMs: 30 * 60_000 });
      const cookieAt = Date.now() + 2000;
      const { info } = await store.create({ a: 1 }, { cookieExpiresAt: cookieAt });
      const remaining = cookieAt - Date.now();
      const ttl = (await redis.eval(PTTL, [`${store.prefix}s:{${info.handle}}`], [])) as number;
      // A few ms of slack for the two clocks' readings (Redis' script clock is taken when the
      // script starts); a cap that ignored the delay would be ~300 ms over.
      assert.ok(ttl > 0 && ttl <= remaining + 10, `key TTL ${ttl} ms, cookie ${remaining} ms`);
    });

    test('a session key of another type is named WARDEN_E_STORE_WRONG_TYPE, not an outage', async () => {
      const store = newStore();
      const { id, info } = await store.create({ a: 1 }, { userId: 'typed' });
      const key = `${store.prefix}s:{${info.handle}}`;
      await redis.eval(RPUSH, [key], ['foreign']);
      await assert.rejects(store.get(id), wrongType('list'));
      await assert.rejects(store.save(id, { a: 2 }), wrongType('list'));
      await assert.rejects(store.touch(id), wrongType('list'));
      await assert.rejects(store.info(info.handle), wrongType('list'));
      await assert.rejects(store.peek(info.handle), wrongType('list'));
      await assert.rejects(store.destroy(id), wrongType('list'));
      await assert.rejects(store.get(id), (e) => isDataLayerError(e) && e.details.key === key);
      assert.equal(await redis.eval(EXISTS, [key], []), 1, "another program's key is left alone");
      // the per-user index too
      await redis.eval(SETSTR, [`${store.prefix}u:{typed}`], ['x']);
      await assert.rejects(store.listUser('typed'), wrongType('string'));
      await assert.rejects(store.revokeUser('typed'), wrongType('string'));
    });

    test('clearing sessions leaves the cache prefix alone', async () => {
      const store = newStore();
      await store.create({ a: 1 }, { userId: 'x' });
      await redis.set('app:cache:k:keep', '1');
      assert.ok((await store.clear()) >= 2);
      assert.equal(await store.count(), 0);
      assert.equal(await redis.get('app:cache:k:keep'), '1');
    });
  });
}
