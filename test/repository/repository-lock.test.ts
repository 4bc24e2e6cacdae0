import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isWardenError, WardenError, type ErrorCode } from '../../src/errors.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import type { ObjectStore } from '../../src/repository/object-store.ts';
import { acquireLock, lockHolder, type LockHolder } from '../../src/repository/repository-lock.ts';
import { hostTag } from '../../src/repository/temp-name.ts';
import type { S3ObjectStore } from '../../src/repository/s3/s3-object-store.ts';
import { startS3, type TestS3 } from '../harness/s3.ts';

/** Short enough for quick tests, long enough that a loaded machine's slow fsync or S3 request does not cost the lease. */
const LEASE_MS = 2_000;
const KEY = 'locks/backup.lock';
const OTHER_HOST = 'warden-peer.invalid';

/** Opens a fresh repository; `peer()` opens another client of the same one (another "process"). */
type Repo = { store: ObjectStore; peer: () => Promise<ObjectStore> };

function foreignLock(lease: 'expired' | 'live', overrides: Partial<LockHolder> = {}): Buffer {
  const renewed = lease === 'expired' ? Date.now() - 10 * LEASE_MS : Date.now();
  const holder: LockHolder = {
    pid: 4242,
    host: OTHER_HOST,
    startedAt: new Date(renewed - 60_000).toISOString(),
    purpose: 'base backup',
    token: randomBytes(16).toString('hex'),
    renewedAt: new Date(renewed).toISOString(),
    expiresAt: new Date(renewed + 60_000 * (lease === 'live' ? 1 : 0) + LEASE_MS).toISOString(),
    leaseMs: LEASE_MS,
    ...overrides,
  };
  return Buffer.from(JSON.stringify(holder));
}

/** The lock's body; read again when torn (s3rver overwrites objects in place, so a read can be). */
async function stored(store: ObjectStore, key = KEY): Promise<LockHolder> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return JSON.parse((await store.getBuffer(key)).toString('utf8')) as LockHolder;
    } catch (error) {
      if (attempt >= 5) throw error;
      await sleep(50);
    }
  }
}

async function rejectsWithCode(promise: Promise<unknown>, code: ErrorCode): Promise<WardenError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isWardenError(error, code), `expected ${code}, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected ${code}, but it succeeded`);
}

async function waitFor(what: string, ms: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Passes everything through, except that lock writes fail while `cutOff` (the repository unreachable). */
function faultyStore(inner: ObjectStore): ObjectStore & { cutOff: boolean } {
  const faults = { cutOff: false };
  return new Proxy(inner, {
    get(target, property) {
      if (property === 'cutOff') return faults.cutOff;
      if (property === 'putBuffer') {
        return async (key: string, data: Buffer) => {
          if (faults.cutOff) throw new WardenError('WARDEN_E_REPO_IO', `injected fault writing ${key}`);
          return target.putBuffer(key, data);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
    set(_target, property, value) {
      if (property !== 'cutOff') return false;
      faults.cutOff = value as boolean;
      return true;
    },
  }) as ObjectStore & { cutOff: boolean };
}

function lockSuite(label: string, open: () => Promise<Repo>, raceRounds: number): void {
  describe(label, () => {
    test('a lock left by a dead process on another host (lease expired) is taken over', async () => {
      const { store } = await open();
      await store.putBuffer(KEY, foreignLock('expired'));
      assert.equal(await lockHolder(store, 'backup'), undefined, 'an expired lease is not held');
      const lock = await acquireLock(store, 'backup', 'base backup', { leaseMs: LEASE_MS });
      const holder = await stored(store);
      assert.equal(holder.host, os.hostname());
      assert.equal(holder.token, lock.token);
      assert.equal((await lockHolder(store, 'backup'))?.token, lock.token);
      await lock.release();
      assert.equal(await store.stat(KEY), undefined, 'released');
      assert.deepEqual(await store.list('locks/'), [], 'no take-over claim left behind');
    });

    test('a live lease held on another host is respected and reported with its holder', async () => {
      const { store } = await open();
      const body = foreignLock('live');
      await store.putBuffer(KEY, body);
      const error = await rejectsWithCode(
        acquireLock(store, 'backup', 'base backup', { leaseMs: LEASE_MS }),
        'WARDEN_E_REPO_LOCKED',
      );
      const holder = error.details.holder as LockHolder;
      assert.equal(holder.host, OTHER_HOST);
      assert.equal(holder.pid, 4242);
      assert.equal((await lockHolder(store, 'backup'))?.host, OTHER_HOST);
      assert.deepEqual(await store.getBuffer(KEY), body, 'the lock is untouched');
    });

    test('a lock without a lease (older Warden) on another host is not taken over', async () => {
      const { store } = await open();
      await store.putBuffer(
        KEY,
        Buffer.from(
          JSON.stringify({ pid: 4242, host: OTHER_HOST, startedAt: '2020-01-01T00:00:00Z', purpose: 'x' }),
        ),
      );
      await rejectsWithCode(acquireLock(store, 'backup', 'base backup'), 'WARDEN_E_REPO_LOCKED');
    });

    test('a lock of a dead process on this host is taken over before its lease ends', async () => {
      const { store } = await open();
      const dead = spawnSync(process.execPath, ['-e', '']).pid;
      await store.putBuffer(KEY, foreignLock('live', { host: os.hostname(), pid: dead }));
      const lock = await acquireLock(store, 'backup', 'base backup', { leaseMs: LEASE_MS });
      assert.equal((await stored(store)).token, lock.token);
      await lock.release();
    });

    test('a take-over claim of a dead process on this host does not block the next take-over (issue 11)', async () => {
      // A run SIGKILLed while taking over a stale lock leaves its claim with a live lease: the
      // next run must not report the repository "locked" by that dead process for a minute.
      const { store } = await open();
      const dead = spawnSync(process.execPath, ['-e', '']).pid;
      const stale = foreignLock('live', { host: os.hostname(), pid: dead });
      await store.putBuffer(KEY, stale);
      const id = createHash('sha256').update(stale).digest('hex').slice(0, 16);
      await store.putBuffer(
        `locks/backup.takeover.${id}.0`,
        foreignLock('live', { host: os.hostname(), pid: dead, leaseMs: 60_000, purpose: `take over ${KEY}` }),
      );
      const lock = await acquireLock(store, 'backup', 'base backup', { leaseMs: LEASE_MS });
      assert.equal((await stored(store)).token, lock.token);
      await lock.release();
    });

    test('an acquisition removes what dead processes left in locks/ (unfinished writes, take-over claims that can no longer win), nothing else (issue 11)', async () => {
      const { store } = await open();
      const dead = spawnSync(process.execPath, ['-e', '']).pid;
      const claimBody = (pid: number, lease: 'live' | 'expired' = 'live') =>
        foreignLock(lease, { host: os.hostname(), pid, purpose: 'take over' });
      const tmp = (tag: string, pid: number) => `locks/backup.lock.tmp-${tag}-${pid}-0badc0de`;
      const removed = [
        tmp(hostTag(), dead),
        `locks/backup.takeover.${'a'.repeat(16)}.0.tmp-${hostTag()}-${dead}-0badc0de`,
        `locks/backup.takeover.${'a'.repeat(16)}.0`,
        `locks/backup.takeover.${'c'.repeat(16)}.1`,
      ];
      // Another lock, stale, with a dead claimant's claim on its current bytes: kept, else a
      // new contender could take claim 0 while another holds claim 1.
      const walLock = foreignLock('expired');
      const walId = createHash('sha256').update(walLock).digest('hex').slice(0, 16);
      const kept = [
        tmp(hostTag(), process.pid), // a write under way in a live process
        tmp(hostTag('warden-peer.invalid'), dead), // another host's: its pid says nothing here
        'locks/backup.lock.tmp-0badc0de', // named before writers were named
        `locks/wal-stream.takeover.${'b'.repeat(16)}.0`, // a live claimant, still taking over
        `locks/wal-stream.takeover.${walId}.0`,
        'locks/wal-stream.lock',
      ];
      for (const key of removed.slice(0, 2)) await store.putBuffer(key, Buffer.from('partial'));
      await store.putBuffer(removed[2]!, claimBody(dead));
      await store.putBuffer(removed[3]!, foreignLock('expired', { purpose: 'take over' }));
      for (const key of kept.slice(0, 3)) await store.putBuffer(key, Buffer.from('partial'));
      await store.putBuffer(kept[3]!, claimBody(process.pid));
      await store.putBuffer(kept[4]!, claimBody(dead));
      await store.putBuffer(kept[5]!, walLock);
      const lock = await acquireLock(store, 'backup', 'base backup', { leaseMs: LEASE_MS });
      const left = await store.list('locks/', { includeIncomplete: true });
      assert.deepEqual(left.sort(), [...kept, KEY].sort());
      await lock.release();
    });

    test('a lock whose body never parses (creation cut short) is taken over', async () => {
      const { store } = await open();
      await store.putBuffer(KEY, Buffer.alloc(0));
      const lock = await acquireLock(store, 'backup', 'base backup', { leaseMs: LEASE_MS });
      assert.equal((await stored(store)).token, lock.token);
      await lock.release();
    });

    test('renewal keeps the lock held past its lease length', async () => {
      const { store, peer } = await open();
      const lock = await acquireLock(store, 'backup', 'base backup', { leaseMs: LEASE_MS });
      const first = await stored(store);
      await waitFor('the first lease to end', 10_000, () => Date.now() > Date.parse(first.expiresAt!) + 200);
      const renewed = await stored(store);
      assert.equal(renewed.token, lock.token);
      assert.ok(Date.parse(renewed.expiresAt!) > Date.parse(first.expiresAt!), 'the lease was extended');
      await rejectsWithCode(
        acquireLock(await peer(), 'backup', 'base backup', { leaseMs: LEASE_MS }),
        'WARDEN_E_REPO_LOCKED',
      );
      assert.equal((await lockHolder(await peer(), 'backup'))?.token, lock.token);
      assert.equal(lock.signal.aborted, false);
      await lock.release();
      assert.equal(await store.stat(KEY), undefined);
    });

    test('a holder whose lock was taken over notices, reports it and leaves the new lock alone', async () => {
      const { store, peer } = await open();
      const lock = await acquireLock(store, 'backup', 'base backup', { leaseMs: LEASE_MS });
      // What a contender whose clock runs far ahead would do.
      const other = foreignLock('live');
      await (await peer()).putBuffer(KEY, other);
      await waitFor('the holder to notice', 10_000, () => lock.signal.aborted);
      const reason = lock.signal.reason as WardenError;
      assert.equal(reason.code, 'WARDEN_E_REPO_LOCKED');
      assert.equal(reason.details.lost, 'taken over');
      assert.equal((reason.details.holder as LockHolder).host, OTHER_HOST);
      assert.throws(
        () => lock.assertHeld(),
        (error) => isWardenError(error, 'WARDEN_E_REPO_LOCKED'),
      );
      await lock.release();
      assert.deepEqual(await store.getBuffer(KEY), other, 'release left the new holder’s lock');
    });

    test('a holder cut off from the repository gives up before another process takes over', async () => {
      const { store, peer } = await open();
      const faulty = faultyStore(store);
      const lock = await acquireLock(faulty, 'backup', 'base backup', { leaseMs: LEASE_MS });
      faulty.cutOff = true;
      let abortedFirst: boolean | undefined;
      await waitFor('another process to take the lock over', 15_000, async () => {
        try {
          const taken = await acquireLock(await peer(), 'backup', 'base backup', { leaseMs: LEASE_MS });
          abortedFirst = lock.signal.aborted;
          await taken.release();
          return true;
        } catch (error) {
          if (!isWardenError(error, 'WARDEN_E_REPO_LOCKED')) throw error;
          return false;
        }
      });
      assert.equal(abortedFirst, true, 'the cut-off holder had stopped before the take-over');
      assert.equal((lock.signal.reason as WardenError).details.lost, 'not renewed');
      faulty.cutOff = false;
      await lock.release();
    });

    test('a lease this process lost does not block its own next acquisition until the lease runs out', async () => {
      const { store } = await open();
      const faulty = faultyStore(store);
      // Long enough that the lost lease is still unexpired when this process asks again.
      const leaseMs = 20_000;
      const lock = await acquireLock(faulty, 'backup', 'WAL stream', { leaseMs });
      faulty.cutOff = true;
      await waitFor('the lease to be lost', 30_000, async () => lock.signal.aborted);
      faulty.cutOff = false;
      const left = JSON.parse((await store.getBuffer(KEY)).toString('utf8')) as LockHolder;
      assert.equal(left.pid, process.pid, 'the lost lease is still in the repository');
      assert.ok(Date.parse(left.expiresAt!) > Date.now(), 'its lease has not run out yet');
      const again = await acquireLock(faulty, 'backup', 'WAL stream', { leaseMs });
      assert.notEqual(again.token, left.token);
      await again.release();
      await lock.release();
    });

    test(`contenders racing for one stale lock end with exactly one holder (${raceRounds} rounds)`, async () => {
      const { store, peer } = await open();
      const contenders = await Promise.all([peer(), peer(), peer()]);
      for (let round = 0; round < raceRounds; round += 1) {
        await store.putBuffer(KEY, foreignLock('expired'));
        const results = await Promise.allSettled(
          contenders.map((s) => acquireLock(s, 'backup', `contender`, { leaseMs: 10_000 })),
        );
        const winners = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
        for (const r of results)
          if (r.status === 'rejected')
            assert.ok(isWardenError(r.reason, 'WARDEN_E_REPO_LOCKED'), `round ${round}: ${String(r.reason)}`);
        assert.equal(winners.length, 1, `round ${round}: ${winners.length} holders`);
        assert.equal((await stored(store)).token, winners[0]!.token);
        await winners[0]!.release();
      }
      assert.deepEqual(await store.list('locks/'), [], 'no take-over claim left behind');
    });
  });
}

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

lockSuite(
  'filesystem',
  async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'warden-lock-'));
    dirs.push(root);
    return { store: new FsObjectStore(root), peer: async () => new FsObjectStore(root) };
  },
  40,
);

let s3: TestS3;
const s3Stores: S3ObjectStore[] = [];
before(async () => {
  s3 = await startS3();
});
after(async () => {
  for (const store of s3Stores) store.destroy();
  await s3?.stop();
});

lockSuite(
  's3',
  async () => {
    const store = await s3.newStore();
    const settings = { bucket: store.location.split('/')[2]!, prefix: store.location.split('/')[3]! };
    s3Stores.push(store);
    return {
      store,
      peer: async () => {
        const peer = await s3.newStore(settings);
        s3Stores.push(peer);
        return peer;
      },
    };
  },
  10,
);
