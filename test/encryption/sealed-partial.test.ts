import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { decryptBuffer } from '../../src/pipeline/encryption/age-stream.ts';
import { X25519Identity } from '../../src/pipeline/encryption/age-keys.ts';
import type { RepositoryKeys } from '../../src/pipeline/encryption/repository-keys.ts';
import { sha256 } from '../../src/pipeline/hashing.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import type { BackupRecord } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import type { ObjectStore } from '../../src/repository/object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import type { S3ObjectStore } from '../../src/repository/s3/s3-object-store.ts';
import {
  readPartialSegment,
  readSegment,
  readWalInventory,
  segmentDataKey,
  timelineDir,
  type SegmentRecord,
} from '../../src/repository/wal-archive.ts';
import { verifyRepository, type VerifyReport } from '../../src/verify/repository-verify.ts';
import { formatLsn, parseLsn, type Lsn } from '../../src/wal/lsn.ts';
import { listWalGaps } from '../../src/repository/wal-gap-incidents.ts';
import { PartialWriter } from '../../src/wal/partial-format.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { withRestored } from '../harness/restored.ts';
import { startS3, type TestS3 } from '../harness/s3.ts';
import { flipByte } from '../faults/helpers.ts';

// Two encrypted repositories streamed at once from one cluster: a directory and an S3 bucket.
// The receivers hold only the public key, as a backup host should.
const alice = X25519Identity.generate();
const writeKeys: RepositoryKeys = { recipients: [alice.recipient] };
const readKeys: RepositoryKeys = { identities: [alice] };
// A card number that must never be found at rest.
const MARKER = `4111-1111-1111-${randomBytes(8).toString('hex')}`;

let cluster: TestCluster;
let s3: TestS3;
let fsStore: FsObjectStore;
let s3Store: S3ObjectStore;
const abort = new AbortController();
const running: Array<Promise<void>> = [];
const flushed = { fs: 0n, s3: 0n };
let markerLsn: Lsn;
let markerSegment: string;

before(async () => {
  [cluster, s3] = await Promise.all([startCluster(), startS3()]);
  fsStore = new FsObjectStore(path.join(cluster.workDir, 'repo'));
  s3Store = await s3.newStore();
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  for (const [name, store] of [
    ['fs', fsStore],
    ['s3', s3Store],
  ] as const) {
    const receiver = new WalReceiver({
      connection,
      store,
      slotName: `warden_${name}`,
      keys: writeKeys,
      signal: abort.signal,
      onFlush: (lsn) => (flushed[name] = lsn),
    });
    running.push(
      receiver.run().catch((error) => {
        if (!abort.signal.aborted) throw error;
      }),
    );
    await takeBackup({ connection, store, slotName: `warden_${name}`, compression: 'zstd', keys: writeKeys });
  }
  await cluster.query('CREATE TABLE cards (id serial PRIMARY KEY, number text NOT NULL)');
  await withClient(cluster.url(), async (client) => {
    await client.query('INSERT INTO cards (number) VALUES ($1)', [MARKER]);
    const { rows } = await client.query<{ lsn: string; segment: string }>(
      'SELECT pg_current_wal_lsn()::text AS lsn, pg_walfile_name(pg_current_wal_lsn()) AS segment',
    );
    markerLsn = parseLsn(rows[0]!.lsn);
    markerSegment = rows[0]!.segment;
  });
  await waitFor(() => flushed.fs >= markerLsn && flushed.s3 >= markerLsn, 'both receivers flush the marker');
});

after(async () => {
  abort.abort();
  await Promise.all(running);
  s3Store?.destroy();
  await Promise.all([cluster?.stop(), s3?.stop()]);
});

async function waitFor(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Every file under the repository directory (temp files included) and every object in the bucket. */
async function everyStoredByte(): Promise<Array<{ where: string; data: Buffer }>> {
  const found: Array<{ where: string; data: Buffer }> = [];
  for (const entry of await readdir(fsStore.root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    found.push({ where: file, data: await readFile(file) });
  }
  for (const key of await s3Store.list('', { includeIncomplete: true }))
    found.push({ where: `${s3Store.location}/${key}`, data: await s3Store.getBuffer(key) });
  return found;
}

async function assertMarkerNowhere(): Promise<number> {
  const objects = await everyStoredByte();
  const needle = Buffer.from(MARKER);
  for (const { where, data } of objects)
    assert.ok(!data.includes(needle), `the marker is in the clear in ${where}`);
  return objects.length;
}

const partialKeyOf = (segment: string) => `${timelineDir(1)}${segment}.partial`;

test('a card number inserted while streaming is in no stored byte, while its segment is partial and after it is archived', async () => {
  for (const store of [fsStore, s3Store]) {
    const inventory = await readWalInventory(await Repository.open(store));
    const partial = inventory.partials.find((p) => p.segment === markerSegment);
    assert.ok(partial, `${store.location}: the marker's segment is still partial`);
    assert.equal(partial.format, 'sealed');
    assert.ok(
      partial.startLsn + BigInt(partial.validBytes) >= markerLsn,
      'the flushed frames hold the marker',
    );
  }
  assert.ok((await assertMarkerNowhere()) > 10);

  await cluster.query('SELECT pg_switch_wal()');
  await cluster.query('INSERT INTO cards (number) VALUES ($1)', ['after the switch']);
  for (const store of [fsStore, s3Store]) {
    await waitFor(async () => {
      const keys = await store.list(timelineDir(1));
      return (
        keys.includes(`${timelineDir(1)}${markerSegment}.json`) && !keys.includes(partialKeyOf(markerSegment))
      );
    }, `${store.location} archives segment ${markerSegment}`);
  }
  await assertMarkerNowhere();
});

test('restore to the latest point reads the sealed partial and reaches the marker row', async () => {
  await cluster.query('INSERT INTO cards (number) VALUES ($1)', ['newest']);
  const [{ lsn }] = (await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')) as [
    { lsn: string },
  ];
  await waitFor(
    () => flushed.fs >= parseLsn(lsn) && flushed.s3 >= parseLsn(lsn),
    'the newest row is flushed',
  );
  for (const [name, store] of [
    ['fs', fsStore],
    ['s3', s3Store],
  ] as const) {
    const rows = await withRestored(
      cluster,
      store,
      `restored-${name}`,
      { kind: 'latest' },
      async (client) => (await client.query<{ number: string }>('SELECT number FROM cards ORDER BY id')).rows,
      readKeys,
    );
    // 'newest' lives only in the partial segment: reaching it means its frames were opened.
    assert.deepEqual(
      rows.map((row) => row.number),
      [MARKER, 'after the switch', 'newest'],
      name,
    );
  }
});

/** A copy of the directory repository to damage (the live one keeps streaming). */
async function scratchCopy(name: string): Promise<{ store: FsObjectStore; dir: string }> {
  const dir = path.join(cluster.workDir, name);
  // A writer's temp file can vanish between listing and copying: it is not part of the repository.
  await cp(fsStore.root, dir, {
    recursive: true,
    filter: (source) => !path.basename(source).includes('.tmp-'),
  });
  return { store: new FsObjectStore(dir), dir };
}

async function newestPartialKey(store: ObjectStore): Promise<string> {
  const inventory = await readWalInventory(await Repository.open(store));
  const newest = inventory.partials.sort((a, b) => Number(b.startLsn - a.startLsn))[0];
  assert.ok(newest && newest.validBytes > 0, 'a partial segment with WAL in it');
  return newest.key;
}

function problemsOf(report: VerifyReport, object: string) {
  return report.problems.filter((p) => p.object === object);
}

test('verify reports a flipped byte in the sealed partial segment', async () => {
  const { store, dir } = await scratchCopy('verify-flip');
  const key = await newestPartialKey(store);
  const clean = await verifyRepository({ store, keys: readKeys });
  assert.deepEqual(problemsOf(clean, key), [], 'the intact partial verifies');
  const size = (await store.stat(key))!.size;
  await flipByte(path.join(dir, key), size - 20);
  const report = await verifyRepository({ store, keys: readKeys });
  const [problem] = problemsOf(report, key);
  assert.equal(problem?.kind, 'corrupt');
  assert.equal(problem?.details?.problem, 'partial-frame-authentication-failed');
  assert.equal(report.ok, false);
});

test('verify flags a partial segment stored in the clear in an encrypted repository', async () => {
  const { store, dir } = await scratchCopy('verify-clear');
  const key = await newestPartialKey(store);
  const segment = key.slice(key.lastIndexOf('/') + 1, -'.partial'.length);
  const repository = await Repository.open(store, readKeys);
  const { raw, validBytes } = await readPartialSegment(repository, { key, segment });
  const wal = raw.subarray(0, validBytes);
  // Both clear forms: checksummed frames (an unencrypted repository's format) and raw WAL.
  const writer = await PartialWriter.create(segment);
  for (const clear of [Buffer.concat([writer.preamble, writer.frame(wal)]), wal]) {
    await writeFile(path.join(dir, key), clear);
    const [problem] = problemsOf(await verifyRepository({ store, keys: readKeys }), key);
    assert.equal(problem?.kind, 'plaintext');
    assert.equal(problem?.details?.problem, 'plaintext-partial');
    // Also without any key: the check reads no plaintext.
    const [keyless] = problemsOf(await verifyRepository({ store }), key);
    assert.equal(keyless?.details?.problem, 'plaintext-partial');
  }
});

test('verify flags objects whose record says encrypted but whose bytes are not an age file', async () => {
  const { store, dir } = await scratchCopy('verify-not-age');
  // An archived WAL segment, a backup's manifest and archive, each swapped for its decrypted bytes with
  // the record's size and checksum updated to match.
  const recordKey = `${timelineDir(1)}${markerSegment}.json`;
  const record = JSON.parse((await store.getBuffer(recordKey)).toString()) as SegmentRecord;
  const dataKey = segmentDataKey(1, markerSegment);
  const clearSegment = await decryptBuffer(await store.getBuffer(dataKey), { identities: [alice] });
  await writeFile(path.join(dir, dataKey), clearSegment);
  await writeFile(
    path.join(dir, recordKey),
    JSON.stringify({ ...record, size: clearSegment.length, sha256: sha256(clearSegment) }),
  );
  const backupKey = (await store.list('backups/')).find((k) => k.endsWith('/backup.json'))!;
  const backup = JSON.parse((await store.getBuffer(backupKey)).toString()) as BackupRecord;
  const clearManifest = await decryptBuffer(await store.getBuffer(backup.manifest.key), {
    identities: [alice],
  });
  await writeFile(path.join(dir, backup.manifest.key), clearManifest);
  backup.manifest = { ...backup.manifest, size: clearManifest.length, sha256: sha256(clearManifest) };
  const archive = backup.archives[0]!;
  const clearArchive = await decryptBuffer(await store.getBuffer(archive.key), { identities: [alice] });
  await writeFile(path.join(dir, archive.key), clearArchive);
  backup.archives[0] = { ...archive, size: clearArchive.length, sha256: sha256(clearArchive) };
  await writeFile(path.join(dir, backupKey), JSON.stringify(backup));

  for (const keys of [readKeys, undefined]) {
    const report = await verifyRepository({ store, ...(keys ? { keys } : {}) });
    for (const object of [dataKey, backup.manifest.key, archive.key]) {
      const [problem] = problemsOf(report, object);
      assert.equal(problem?.kind, 'plaintext', object);
      assert.equal(problem?.details?.problem, 'recorded-encrypted-not-age', object);
    }
  }
});

test('a leftover sealed partial that the receiver cannot open is archived sealed and reads back with the identity', async () => {
  const store = new FsObjectStore(path.join(cluster.workDir, 'repo-leftover'));
  const slotName = 'warden_leftover';
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  const receive = () => {
    const stop = new AbortController();
    let flushedTo = 0n;
    const receiver = new WalReceiver({
      connection,
      store,
      slotName,
      keys: writeKeys,
      signal: stop.signal,
      onFlush: (lsn) => (flushedTo = lsn),
      // The second run resumes past the leftover's segment: a recorded gap, streamed over.
      continueAfterGap: true,
    });
    const done = receiver.run();
    return { flushed: () => flushedTo, stop: async () => (stop.abort(), await done) };
  };
  const first = receive();
  const leftoverMarker = `4000-0000-0000-${randomBytes(8).toString('hex')}`;
  await cluster.query('INSERT INTO cards (number) VALUES ($1)', [leftoverMarker]);
  const [row] = await cluster.query<{ lsn: string; segment: string }>(
    'SELECT pg_current_wal_lsn()::text AS lsn, pg_walfile_name(pg_current_wal_lsn()) AS segment',
  );
  await waitFor(() => first.flushed() >= parseLsn(row!.lsn), 'the first receiver flushes the row');
  await first.stop();
  const key = partialKeyOf(row!.segment);
  const received = await readPartialSegment(await Repository.open(store, readKeys), {
    key,
    segment: row!.segment,
  });
  assert.equal(received.format, 'sealed');

  // The server moves on past that segment: the partial becomes a leftover the next run archives.
  await cluster.query('SELECT pg_switch_wal()');
  await cluster.query('INSERT INTO cards (number) VALUES ($1)', ['later']);
  await cluster.query('SELECT pg_switch_wal()');
  // The slot is lost (dropped; with max_slot_wal_keep_size it would be invalidated): the next
  // receiver makes it again at the server's position, past the partial's segment. (Advancing the
  // slot instead is refused now: a slot beyond the repository's WAL was consumed by another.)
  await waitFor(async () => {
    try {
      await cluster.query('SELECT pg_drop_replication_slot($1)', [slotName]);
      return true;
    } catch {
      return false; // the stopped receiver's walsender has not exited yet
    }
  }, 'the slot can be dropped');
  // A new slot reserves WAL from the last checkpoint's redo point: move it past the segment.
  await cluster.query('CHECKPOINT');

  const second = receive();
  try {
    await waitFor(async () => {
      const keys = await store.list(timelineDir(1));
      return keys.includes(`${timelineDir(1)}${row!.segment}.json`) && !keys.includes(key);
    }, 'the leftover partial is archived');
  } finally {
    await second.stop();
  }
  const record = JSON.parse(
    (await store.getBuffer(`${timelineDir(1)}${row!.segment}.json`)).toString(),
  ) as SegmentRecord;
  assert.equal(record.container, 'sealed-partial');
  assert.equal(record.validBytes, received.validBytes);
  const repository = await Repository.open(store, readKeys);
  assert.deepEqual(await readSegment(repository, record), received.raw);
  // The hole after the bytes the leftover had is a recorded gap, not a silent one.
  const { gaps } = await listWalGaps(repository);
  assert.deepEqual(
    gaps.map((g) => [g.from, g.cause]),
    [[formatLsn(parseLsn(record.startLsn) + BigInt(record.validBytes)), 'slot-recreated']],
  );
  const needle = Buffer.from(leftoverMarker);
  for (const entry of await readdir(store.root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const data = await readFile(path.join(entry.parentPath, entry.name));
    assert.ok(!data.includes(needle), `the marker is in the clear in ${entry.name}`);
  }
  // With the identity its frames are authenticated; without one it still is no plaintext.
  const dataKey = segmentDataKey(1, row!.segment);
  const withKey = await verifyRepository({ store, keys: readKeys });
  assert.deepEqual(
    withKey.problems.filter((p) => p.object === dataKey && p.kind !== 'wal-gap'),
    [],
  );
  const keyless = await verifyRepository({ store });
  assert.ok(!keyless.problems.some((p) => p.kind === 'plaintext'));
});
