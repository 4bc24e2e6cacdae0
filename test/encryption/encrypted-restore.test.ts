import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { checkLedger, createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { X25519Identity } from '../../src/pipeline/encryption/age-keys.ts';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import type { BackupRecord } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory, segmentDataKey } from '../../src/repository/wal-archive.ts';
import { restore, type RestoreOptions } from '../../src/restore/restore.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { connectionOf, flipByte, rejectsWithCode, withClient } from '../faults/helpers.ts';

// A repository where every object is an age file: the first backup and all WAL to `alice`,
// a second backup (after a key rotation) to `bob`.
const alice = X25519Identity.generate();
const bob = X25519Identity.generate();
let cluster: TestCluster;
let store: FsObjectStore;
const abort = new AbortController();
let receiverDone: Promise<void>;
let flushed = 0n;
const transfers: number[] = [];
let first: BackupRecord;
let rotated: BackupRecord;

async function writeTransfers(count: number): Promise<void> {
  await withClient(cluster.url(), async (client) => {
    for (let i = 0; i < count; i += 1) transfers.push((await randomTransfer(client)).id);
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const target = parseLsn(rows[0]!.lsn);
    const deadline = Date.now() + 30_000;
    while (flushed < target && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  });
}

before(async () => {
  cluster = await startCluster();
  store = new FsObjectStore(path.join(cluster.workDir, 'repo'));
  const connection = connectionOf(cluster);
  await withClient(cluster.url(), (client) => createLedger(client));
  const receiver = new WalReceiver({
    connection,
    store,
    slotName: 'warden',
    keys: { recipients: [alice.recipient] },
    signal: abort.signal,
    onFlush: (lsn) => (flushed = lsn),
  });
  receiverDone = receiver.run().catch((error) => {
    if (!abort.signal.aborted) throw error;
  });
  const keys = { recipients: [alice.recipient] };
  first = (await takeBackup({ connection, store, slotName: 'warden', compression: 'zstd', keys })).backup;
  await writeTransfers(10);
  // Key rotation: new backups go to bob; the running WAL stream still uses alice.
  const rotatedKeys = { recipients: [bob.recipient] };
  rotated = (
    await takeBackup({ connection, store, slotName: 'warden', compression: 'zstd', keys: rotatedKeys })
  ).backup;
  await writeTransfers(10);
  // enough WAL to fill a few segments, so archived (not only partial) segments are restored
  await cluster.query('SELECT pg_switch_wal()');
  await writeTransfers(5);
});

after(async () => {
  abort.abort();
  await receiverDone;
  await cluster?.stop();
});

async function restoreLedger(name: string, options: Partial<RestoreOptions>) {
  const targetDir = path.join(cluster.workDir, name);
  const report = await restore({ store, target: { kind: 'latest' }, targetDir, start: true, ...options });
  const instance = new LocalInstance({
    binaries: cluster.instance.binaries,
    dataDir: targetDir,
    port: report.port!,
  });
  try {
    return await withClient(cluster.url().replace(`:${cluster.port}/`, `:${report.port}/`), (c) =>
      checkLedger(c),
    );
  } finally {
    await instance.stop({ mode: 'immediate' });
  }
}

test('every object is an age file to the recorded recipients; the key is not in the repository', async () => {
  const repository = await Repository.open(store);
  const inventory = await readWalInventory(repository);
  const segments = [...inventory.segments.values()].flat();
  assert.ok(segments.length > 0);
  for (const record of segments) {
    assert.deepEqual(record.encryption, { format: 'age-v1', recipients: [alice.label] });
    const data = await store.getBuffer(segmentDataKey(record.timeline, record.segment));
    assert.equal(data.subarray(0, 22).toString(), 'age-encryption.org/v1\n');
  }
  for (const [backup, identity] of [
    [first, alice],
    [rotated, bob],
  ] as const) {
    assert.deepEqual(backup.encryption, { format: 'age-v1', recipients: [identity.label] });
    for (const object of [...backup.archives, backup.manifest]) {
      assert.deepEqual(object.encryption, backup.encryption);
      assert.equal((await store.getBuffer(object.key)).subarray(0, 22).toString(), 'age-encryption.org/v1\n');
    }
  }
  const secret = alice.encode();
  for (const entry of await readdir(path.join(cluster.workDir, 'repo'), {
    recursive: true,
    withFileTypes: true,
  })) {
    if (!entry.isFile() || entry.name.endsWith('.partial')) continue;
    const text = (await readFile(path.join(entry.parentPath, entry.name))).toString('latin1');
    assert.ok(!text.includes(secret), `${entry.name} holds no secret key`);
  }
});

test('restore of an encrypted repository finds every committed transfer, like an unencrypted one', async () => {
  const ledger = await restoreLedger('latest', { keys: { identities: [alice, bob] } });
  assert.deepEqual(ledger.transfers, transfers);
  assert.ok(ledger.balanced && ledger.consistent);
});

test('after key rotation the old backup restores with the old identity alone', async () => {
  const ledger = await restoreLedger('old-key', {
    keys: { identities: [alice] },
    target: { kind: 'backup', id: first.id },
  });
  assert.ok(ledger.balanced && ledger.consistent);
});

test('a wrong identity fails with WARDEN_E_KEY_MISMATCH before anything is written', async () => {
  const targetDir = path.join(cluster.workDir, 'wrong-key');
  const error = await rejectsWithCode(
    restore({
      store,
      target: { kind: 'latest' },
      targetDir,
      keys: { identities: [X25519Identity.generate()] },
    }),
    'WARDEN_E_KEY_MISMATCH',
  );
  assert.deepEqual(error.details.recipients, [bob.label]);
  assert.ok(!existsSync(targetDir), 'target not created');
  // bob opens the newest backup but not the WAL after it, which alice's stream wrote
  const empty = path.join(cluster.workDir, 'only-bob');
  await mkdir(empty);
  const walError = await rejectsWithCode(
    restore({ store, target: { kind: 'latest' }, targetDir: empty, keys: { identities: [bob] } }),
    'WARDEN_E_KEY_MISMATCH',
  );
  assert.match(String(walError.details.object), /^wal\//);
  assert.deepEqual(await readdir(empty), [], 'existing empty target left empty');
});

test('no identity fails with WARDEN_E_KEY_MISSING before anything is written', async () => {
  const targetDir = path.join(cluster.workDir, 'no-key');
  await rejectsWithCode(restore({ store, target: { kind: 'latest' }, targetDir }), 'WARDEN_E_KEY_MISSING');
  assert.ok(!existsSync(targetDir));
});

test('a flipped byte inside an encrypted archive is named as corruption; the target is emptied', async () => {
  const copy = new FsObjectStore(path.join(cluster.workDir, 'repo-copy'));
  for (const key of await store.list('')) {
    await mkdir(path.dirname(path.join(cluster.workDir, 'repo-copy', key)), { recursive: true });
    await copyFile(path.join(cluster.workDir, 'repo', key), path.join(cluster.workDir, 'repo-copy', key));
  }
  const archive = rotated.archives[0]!;
  await flipByte(path.join(cluster.workDir, 'repo-copy', archive.key), Math.floor(archive.size / 2));
  const targetDir = path.join(cluster.workDir, 'corrupt');
  const error = await rejectsWithCode(
    restore({ store: copy, target: { kind: 'latest' }, targetDir, keys: { identities: [alice, bob] } }),
    'WARDEN_E_REPO_CORRUPT',
  );
  assert.equal(error.details.object, archive.key);
  assert.equal(error.details.problem, 'chunk-authentication-failed');
  assert.ok(!existsSync(targetDir));
});
