import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SegmentWriter } from '../../src/backup/segment-writer.ts';
import { isWardenError } from '../../src/errors.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import type { Appender } from '../../src/repository/object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import {
  partialKey,
  readPartialOrArchived,
  readPartialSegment,
  readSegment,
  readWalInventory,
} from '../../src/repository/wal-archive.ts';

const SEGMENT = 1024 * 1024;

// Zero runs skip the copy into the (zeroed) segment buffer; a reused buffer that still holds an
// earlier segment's bytes must not leak them into the next one.
test('a segment of data, zero padding and data again is archived byte for byte, also in a reused buffer', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-segwriter-'));
  try {
    const store = new FsObjectStore(dir);
    const repository = await Repository.openFor(store, {
      systemId: '7000000000000000001',
      walSegmentSize: SEGMENT,
      serverVersion: '15.0',
    });
    const writer = new SegmentWriter(repository, 1, SEGMENT, { catchUp: true });
    await writer.open(0n);
    const expected: Buffer[] = [];
    // Segment 1: random bytes everywhere (it fills the buffer that segment 3 may reuse).
    for (let i = 0; i < 8; i += 1) {
      const piece = randomBytes(SEGMENT / 8);
      expected.push(piece);
      await writer.write(BigInt(i * (SEGMENT / 8)), piece);
    }
    // Segment 2: data, a zero run of several messages (a WAL switch), data at its end.
    const segment2: Buffer[] = [
      randomBytes(1000),
      Buffer.alloc(SEGMENT / 2),
      Buffer.alloc(SEGMENT / 2 - 2000),
    ];
    segment2.push(randomBytes(1000));
    let lsn = BigInt(SEGMENT);
    for (const piece of segment2) {
      await writer.write(lsn, piece);
      lsn += BigInt(piece.length);
    }
    // Segment 3 (partial): zeros first, then data, in whatever buffer the pool hands back.
    const segment3 = [Buffer.alloc(300_000), randomBytes(5000)];
    for (const piece of segment3) {
      await writer.write(lsn, piece);
      lsn += BigInt(piece.length);
    }
    await writer.sync();
    const key = partialKey(1, '000000010000000000000002');
    const partial = await readPartialSegment(repository, { key, segment: '000000010000000000000002' });
    assert.equal(partial.format, 'checksummed');
    assert.equal(partial.validBytes, 305_000);
    assert.deepEqual(partial.raw.subarray(0, 305_000), Buffer.concat(segment3));
    assert.equal((await readWalInventory(repository)).partials[0]?.validBytes, 305_000);
    // Framed: the stored bytes are more than the WAL (the format line, a header and checksum per frame).
    assert.ok((await readFile(path.join(dir, key))).length > 305_000);
    await writer.finishPartial();

    const inventory = await readWalInventory(repository);
    const records = inventory.segments.get(1) ?? [];
    assert.equal(records.length, 3);
    assert.deepEqual(await readSegment(repository, records[0]!), Buffer.concat(expected));
    assert.deepEqual(await readSegment(repository, records[1]!), Buffer.concat(segment2));
    const third = await readSegment(repository, records[2]!);
    assert.deepEqual(third.subarray(0, 305_000), Buffer.concat(segment3));
    assert.ok(
      third.subarray(305_000).every((byte) => byte === 0),
      'the unwritten tail is zero',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// A verification or drill restore right after a backup listed the partial just before the
// receiver archived it (archived copy committed, then the partial removed): the reader must
// take the archived copy, not fail on the vanished partial.
test('a partial archived and removed since the listing is read from its archived segment', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-segwriter-'));
  try {
    const store = new FsObjectStore(dir);
    const repository = await Repository.openFor(store, {
      systemId: '7000000000000000002',
      walSegmentSize: SEGMENT,
      serverVersion: '15.0',
    });
    const writer = new SegmentWriter(repository, 1, SEGMENT, { catchUp: true });
    await writer.open(0n);
    const first = randomBytes(SEGMENT / 2);
    await writer.write(0n, first);
    await writer.sync();
    const [listed] = (await readWalInventory(repository)).partials;
    assert.ok(listed, 'the partial is listed');
    assert.deepEqual((await readPartialOrArchived(repository, listed)).subarray(0, first.length), first);
    const rest = randomBytes(SEGMENT / 2);
    await writer.write(BigInt(first.length), rest);
    await writer.close();
    assert.equal(await store.stat(listed.key), undefined, 'the receiver removed the partial');
    assert.deepEqual(await readPartialOrArchived(repository, listed), Buffer.concat([first, rest]));
    // Neither there: the reader's error stands.
    await assert.rejects(
      readPartialOrArchived(repository, {
        ...listed,
        key: partialKey(1, '000000010000000000000009'),
        segment: '000000010000000000000009',
      }),
      (error: unknown) => isWardenError(error, 'WARDEN_E_REPO_IO'),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** A directory store that counts what reaches each partial segment object. */
class PartialWatchingStore extends FsObjectStore {
  /** Per partial key: appenders opened and syncs of them. */
  readonly partialWrites = new Map<string, { opened: number; syncs: number }>();

  override async openAppender(key: string): Promise<Appender> {
    const appender = await super.openAppender(key);
    const writes = this.partialWrites.get(key) ?? { opened: 0, syncs: 0 };
    writes.opened += 1;
    this.partialWrites.set(key, writes);
    const sync = appender.sync.bind(appender);
    return Object.assign(appender, {
      sync: async () => {
        writes.syncs += 1;
        await sync();
      },
    });
  }
}

// On an object store every sync of the partial uploads the whole of it again: a backup's WAL
// catch-up used to upload each completed segment twice (16 MiB uncompressed as its partial, then
// archived). Each completed segment now goes straight to the archive, committed before the
// next one is taken; only the segment the catch-up stops in is kept as a partial.
test('catch-up archives completed segments without writing their partial, and keeps the last one as a partial', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-segwriter-'));
  try {
    const store = new PartialWatchingStore(dir);
    const repository = await Repository.openFor(store, {
      systemId: '7000000000000000003',
      walSegmentSize: SEGMENT,
      serverVersion: '15.0',
    });
    // An earlier run's partial of the first segment, damaged (no valid frame): nothing to keep.
    await store.putBuffer(partialKey(1, '000000010000000000000000'), Buffer.from('not a partial segment'));
    const writer = new SegmentWriter(repository, 1, SEGMENT, { catchUp: true });
    await writer.open(0n);
    const first = randomBytes(SEGMENT);
    await writer.write(0n, first);
    // Committed before write() returned: a flush reported now would be true for the whole segment.
    const archived = (await readWalInventory(repository)).segments.get(1) ?? [];
    assert.equal(archived.length, 1);
    assert.deepEqual(await readSegment(repository, archived[0]!), first);
    assert.equal(
      await store.stat(partialKey(1, '000000010000000000000000')),
      undefined,
      'the stale partial is gone',
    );
    // A sync right at the next segment's start has nothing to hold: no partial object for it.
    await writer.sync();
    const second = randomBytes(SEGMENT);
    await writer.write(BigInt(SEGMENT), second);
    const tail = randomBytes(1000);
    await writer.write(BigInt(2 * SEGMENT), tail);
    await writer.sync();
    await writer.close();

    const partials = [...store.partialWrites.keys()];
    assert.deepEqual(
      partials,
      [partialKey(1, '000000010000000000000002')],
      'only the last segment had a partial',
    );
    assert.deepEqual(store.partialWrites.get(partials[0]!), { opened: 1, syncs: 1 });
    const inventory = await readWalInventory(repository);
    assert.equal(inventory.segments.get(1)?.length, 2);
    assert.deepEqual(await readSegment(repository, inventory.segments.get(1)![1]!), second);
    const partial = await readPartialSegment(repository, {
      key: partials[0]!,
      segment: '000000010000000000000002',
    });
    assert.equal(partial.validBytes, tail.length);
    assert.deepEqual(partial.raw.subarray(0, tail.length), tail);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('outside catch-up a completed segment is made durable in its partial before it is archived', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-segwriter-'));
  try {
    const store = new PartialWatchingStore(dir);
    const repository = await Repository.openFor(store, {
      systemId: '7000000000000000004',
      walSegmentSize: SEGMENT,
      serverVersion: '15.0',
    });
    const writer = new SegmentWriter(repository, 1, SEGMENT);
    await writer.open(0n);
    await writer.write(0n, randomBytes(SEGMENT));
    await writer.close();
    assert.deepEqual(store.partialWrites.get(partialKey(1, '000000010000000000000000')), {
      opened: 1,
      syncs: 1,
    });
    assert.equal((await readWalInventory(repository)).segments.get(1)?.length, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** A store whose partial appends fail from the `failAt`-th call on (an I/O error mid-frame). */
class FailingAppendStore extends FsObjectStore {
  appends = 0;
  failAt = Infinity;
  override async openAppender(key: string) {
    const appender = await super.openAppender(key);
    const append = appender.append.bind(appender);
    appender.append = async (data: Buffer) => {
      this.appends += 1;
      if (this.appends >= this.failAt) throw new Error('injected append failure');
      await append(data);
    };
    return appender;
  }
}

// A large frame is appended as its pieces (header, the WAL from the segment buffer, checksum):
// one cut off after its header is a torn last frame, which readers leave out like a torn write.
test('a large frame cut off between its pieces leaves the earlier frames readable and nothing more', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-segwriter-'));
  try {
    const store = new FailingAppendStore(dir);
    const repository = await Repository.openFor(store, {
      systemId: '7000000000000000003',
      walSegmentSize: SEGMENT,
      serverVersion: '15.0',
    });
    const writer = new SegmentWriter(repository, 1, SEGMENT);
    await writer.open(0n);
    const small = randomBytes(1000);
    await writer.write(0n, small);
    await writer.sync(); // one small frame, in one append
    const large = randomBytes(200_000);
    await writer.write(1000n, large);
    store.failAt = store.appends + 2; // the header goes out, the body fails
    await assert.rejects(writer.sync(), /injected append failure/);
    const key = partialKey(1, '000000010000000000000000');
    const partial = await readPartialSegment(repository, { key, segment: '000000010000000000000000' });
    assert.equal(partial.validBytes, 1000);
    assert.deepEqual(partial.raw.subarray(0, 1000), small);

    // Without a failure the same large frame reads back whole.
    store.failAt = Infinity;
    const again = new SegmentWriter(repository, 1, SEGMENT);
    await again.open(0n);
    await again.write(0n, small);
    await again.write(1000n, large);
    await again.sync();
    const whole = await readPartialSegment(repository, { key, segment: '000000010000000000000000' });
    assert.equal(whole.validBytes, 201_000);
    assert.deepEqual(whole.raw.subarray(0, 201_000), Buffer.concat([small, large]));
    await again.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
