import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { LuaScript } from '../../../src/datalayer/redis/lua-script.ts';
import type { RedisLike } from '../../../src/datalayer/redis/redis-like.ts';
import {
  SessionStore,
  sessionHandle,
  type SessionStoreOptions,
} from '../../../src/datalayer/sessions/index.ts';
import { isWardenError } from '../../../src/errors.ts';
import type { RedisTopology, TopologyFactory } from '../../harness/redis.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const HGET = new LuaScript(`return redis.call('HGET', KEYS[1], ARGV[1])`);
const HSET = new LuaScript(`return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])`);
const PTTL = new LuaScript(`return redis.call('PTTL', KEYS[1])`);

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
      await assert.rejects(otherSalt.get(a.id), (e) => isWardenError(e, 'WARDEN_E_SESSION_INVALID'));
      // flip one character of the ciphertext
      const last = stored.at(-2) === 'A' ? 'B' : 'A';
      await redis.eval(HSET, [keyA], ['d', stored.slice(0, -2) + last + stored.slice(-1)]);
      await assert.rejects(store.get(a.id), (e) => isWardenError(e, 'WARDEN_E_SESSION_INVALID'));
      // move b's ciphertext under a's key
      await redis.eval(HSET, [keyA], ['d', (await redis.eval(HGET, [keyB], ['d'])) as string]);
      await assert.rejects(store.get(a.id), (e) => isWardenError(e, 'WARDEN_E_SESSION_INVALID'));
      assert.deepEqual((await store.get(b.id))?.data, { secret: 'other' });
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
