import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { isWardenError } from '../../src/errors.ts';
import { X25519Identity } from '../../src/pipeline/encryption/age-keys.ts';
import type { RepositoryKeys } from '../../src/pipeline/encryption/repository-keys.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import type { ObjectStore } from '../../src/repository/object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { copyRepository } from '../../src/repository/repository-copy.ts';
import type { S3ObjectStore } from '../../src/repository/s3/s3-object-store.ts';
import { restore } from '../../src/restore/restore.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { restoredLedger } from '../harness/restored.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { startS3, type TestS3 } from '../harness/s3.ts';

let cluster: TestCluster;
let s3: TestS3;
let store: S3ObjectStore;
const identity = X25519Identity.generate();
// The backup side holds only the public key; the identity is needed to restore.
const writeKeys: RepositoryKeys = { recipients: [identity.recipient] };
const readKeys: RepositoryKeys = { identities: [identity] };
const abort = new AbortController();
let receiverDone: Promise<void>;
let flushed = 0n;
const commits: number[] = [];

before(async () => {
  [cluster, s3] = await Promise.all([startCluster(), startS3()]);
  store = await s3.newStore();
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  await withClient(cluster.url(), (client) => createLedger(client));
  const receiver = new WalReceiver({
    connection,
    store,
    slotName: 'warden',
    keys: writeKeys,
    signal: abort.signal,
    onFlush: (lsn) => (flushed = lsn),
  });
  receiverDone = receiver.run().catch((error) => {
    if (!abort.signal.aborted) throw error;
  });
  await takeBackup({ connection, store, slotName: 'warden', compression: 'zstd', keys: writeKeys });
  await withClient(cluster.url(), async (client) => {
    for (let i = 0; i < 20; i += 1) commits.push((await randomTransfer(client)).id);
    await client.query('SELECT pg_switch_wal()');
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const target = parseLsn(rows[0]!.lsn);
    const deadline = Date.now() + 60_000;
    while (flushed < target && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  });
});

after(async () => {
  abort.abort();
  await receiverDone;
  store?.destroy();
  await Promise.all([cluster?.stop(), s3?.stop()]);
});

const restoreLatestLedger = (from: ObjectStore, name: string) =>
  restoredLedger(cluster, from, name, { kind: 'latest' }, readKeys);

test('an encrypted S3 repository restores the same ledger as its directory copy', async () => {
  const [backup] = await listBackups(await Repository.open(store));
  assert.ok(
    backup?.archives.every((archive) => archive.encryption),
    'every archive is encrypted',
  );
  const fromS3 = await restoreLatestLedger(store, 'enc-from-s3');
  assert.deepEqual(fromS3.transfers, commits);
  assert.ok(fromS3.balanced && fromS3.consistent);

  const directory = new FsObjectStore(path.join(cluster.workDir, 'enc-copy'));
  await copyRepository(store, directory);
  const fromDirectory = await restoreLatestLedger(directory, 'enc-from-dir');
  assert.deepEqual(fromDirectory.transfers, fromS3.transfers);
});

test('restoring the encrypted S3 repository without the identity fails before writing the target', async () => {
  const targetDir = path.join(cluster.workDir, 'enc-no-key');
  await assert.rejects(
    restore({ store, target: { kind: 'latest' }, targetDir }),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_KEY_MISSING') || isWardenError(error, 'WARDEN_E_KEY_MISMATCH'),
  );
});
