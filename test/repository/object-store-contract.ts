import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { WardenError } from '../../src/errors.ts';
import type { ObjectStore } from '../../src/repository/object-store.ts';

/**
 * The ObjectStore contract, run against every adapter (filesystem, S3, S3 behind a fault proxy).
 * `newStore` must hand each test an empty store of its own (own directory / bucket / prefix).
 */
export function objectStoreContract(name: string, newStore: () => Promise<ObjectStore>): void {
  const it = (title: string, body: (store: ObjectStore) => Promise<void>) =>
    test(`${name}: ${title}`, { timeout: 120_000 }, async () => body(await newStore()));

  it('put streams an object that get, getBuffer and stat read back whole', async (store) => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const chunks = Array.from({ length: Math.ceil(data.length / 65_536) }, (_, i) =>
      data.subarray(i * 65_536, (i + 1) * 65_536),
    );
    const { size } = await store.put('backups/x/base.tar.zst', Readable.from(chunks));
    assert.equal(size, data.length);
    assert.deepEqual(await store.stat('backups/x/base.tar.zst'), { size: data.length });
    assert.ok((await store.getBuffer('backups/x/base.tar.zst')).equals(data));
    const streamed: Buffer[] = [];
    for await (const chunk of store.get('backups/x/base.tar.zst')) streamed.push(chunk as Buffer);
    assert.ok(Buffer.concat(streamed).equals(data));
  });

  it('put of an object larger than several multipart parts keeps every byte in order', async (store) => {
    const data = randomBytes(21 * 1024 * 1024 + 5);
    async function* source() {
      for (let offset = 0; offset < data.length; offset += 1024 * 1024)
        yield data.subarray(offset, offset + 1024 * 1024);
    }
    const { size } = await store.put('big/object', source());
    assert.equal(size, data.length);
    assert.ok((await store.getBuffer('big/object')).equals(data));
  });

  it('put of an empty source stores an empty object', async (store) => {
    assert.deepEqual(await store.put('empty', Readable.from([])), { size: 0 });
    assert.deepEqual(await store.stat('empty'), { size: 0 });
  });

  it('a put whose source fails leaves no object, not even a partial one', async (store) => {
    async function* failing() {
      yield randomBytes(12 * 1024 * 1024);
      throw new Error('source broke');
    }
    await assert.rejects(store.put('half/object', failing()));
    assert.equal(await store.stat('half/object'), undefined);
    assert.deepEqual(await store.list('half/'), []);
    // Nor an unfinished write (a multipart upload left open, a temp file).
    assert.deepEqual(await store.list('half/', { includeIncomplete: true }), []);
  });

  it('a store that consumes chunks has stored each one before it takes the next (the producer reuses them)', async (store) => {
    if (!store.putConsumesChunks) return;
    // One buffer, refilled for every chunk once the store asks for the next, as the compression
    // pipeline recycles its blocks: a store that kept a reference instead of the bytes stores garbage.
    const chunkSize = 700 * 1024;
    const expected = randomBytes(11 * 1024 * 1024 + 12_345);
    const reused = Buffer.alloc(chunkSize);
    async function* recycling() {
      for (let offset = 0; offset < expected.length; offset += chunkSize) {
        const length = expected.copy(reused, 0, offset, offset + chunkSize);
        yield reused.subarray(0, length);
        reused.fill(0xee);
      }
    }
    assert.deepEqual(await store.put('recycled/object', recycling()), { size: expected.length });
    assert.ok((await store.getBuffer('recycled/object')).equals(expected));
  });

  it('a cancelled put rejects with WARDEN_E_ABORTED and leaves no object', async (store) => {
    const controller = new AbortController();
    async function* slow() {
      yield randomBytes(9 * 1024 * 1024);
      controller.abort();
      await new Promise((resolve) => setTimeout(resolve, 50));
      yield randomBytes(1024);
    }
    await assert.rejects(
      store.put('cancelled', slow(), { signal: controller.signal }),
      hasCode('WARDEN_E_ABORTED'),
    );
    assert.equal(await store.stat('cancelled'), undefined);
  });

  it('putBuffer replaces an object whole', async (store) => {
    await store.putBuffer('wal/stream-state.json', Buffer.from('{"a":1}'));
    await store.putBuffer('wal/stream-state.json', Buffer.from('{"a":2,"b":3}'));
    assert.equal((await store.getBuffer('wal/stream-state.json')).toString(), '{"a":2,"b":3}');
  });

  it('stat of a missing object is undefined; getBuffer of one fails with WARDEN_E_REPO_IO', async (store) => {
    assert.equal(await store.stat('nope'), undefined);
    await assert.rejects(store.getBuffer('nope'), hasCode('WARDEN_E_REPO_IO'));
  });

  it('list returns every key under a prefix, sorted, and nothing outside it', async (store) => {
    const keys = ['wal/00000001/b.json', 'wal/00000001/a.zst', 'wal/history/00000002.history', 'walrus'];
    for (const key of keys) await store.putBuffer(key, Buffer.from(key));
    assert.deepEqual(await store.list('wal/'), [
      'wal/00000001/a.zst',
      'wal/00000001/b.json',
      'wal/history/00000002.history',
    ]);
    assert.deepEqual(await store.list('missing/'), []);
  });

  it('list pages through more keys than one listing page holds', async (store) => {
    const keys = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(5, '0')}`);
    for (let i = 0; i < keys.length; i += 50)
      await Promise.all(keys.slice(i, i + 50).map((key) => store.putBuffer(key, Buffer.from('x'))));
    assert.deepEqual(await store.list('many/'), keys);
    await store.delete('many/');
    assert.deepEqual(await store.list('many/'), []);
  });

  it('delete of a prefix removes every key under it and nothing beside it', async (store) => {
    for (const key of ['backups/a/base.tar.zst', 'backups/a/backup.json', 'backups/ab/backup.json'])
      await store.putBuffer(key, Buffer.from(key));
    await store.delete('backups/a/');
    assert.deepEqual(await store.list('backups/'), ['backups/ab/backup.json']);
    await store.delete('backups/ab/backup.json');
    assert.deepEqual(await store.list('backups/'), []);
    await store.delete('never/existed');
  });

  it('createExclusive creates once and refuses while the key exists', async (store) => {
    assert.equal(await store.createExclusive('locks/backup.lock', Buffer.from('first')), true);
    assert.equal(await store.createExclusive('locks/backup.lock', Buffer.from('second')), false);
    assert.equal((await store.getBuffer('locks/backup.lock')).toString(), 'first');
    await store.delete('locks/backup.lock');
    assert.equal(await store.createExclusive('locks/backup.lock', Buffer.from('third')), true);
  });

  it('an appender makes synced bytes durable, truncates, and reopens at its size', async (store) => {
    const key = 'wal/00000001/000000010000000000000001.partial';
    const first = await store.openAppender(key);
    assert.equal(first.size, 0);
    const a = randomBytes(100_000);
    const b = randomBytes(300_000);
    await first.append(a);
    await first.append(b);
    await first.sync();
    assert.equal(first.size, a.length + b.length);
    assert.ok((await store.getBuffer(key)).equals(Buffer.concat([a, b])));
    await first.close();
    const second = await store.openAppender(key);
    assert.equal(second.size, a.length + b.length);
    await second.truncate(0);
    await second.append(b);
    await second.sync();
    await second.close();
    assert.ok((await store.getBuffer(key)).equals(b));
  });
}

export function hasCode(code: string) {
  return (error: unknown) => {
    assert.ok(error instanceof WardenError, `expected a WardenError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  };
}
