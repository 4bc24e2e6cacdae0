import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { connectionOf, rejectsWithCode, sleep } from './helpers.ts';

let minimal: TestCluster;
let noSenders: TestCluster;

before(async () => {
  [minimal, noSenders] = await Promise.all([
    startCluster({ settings: { wal_level: 'minimal', max_wal_senders: 0 } }),
    startCluster({ settings: { wal_level: 'replica', max_wal_senders: 0 } }),
  ]);
});
after(async () => {
  await Promise.all([minimal?.stop(), noSenders?.stop()]);
});

test('backup refuses a server with wal_level = minimal and writes nothing', async () => {
  const repoDir = path.join(minimal.workDir, 'repo');
  await rejectsWithCode(
    takeBackup({
      connection: connectionOf(minimal),
      store: new FsObjectStore(repoDir),
      slotName: 'warden',
      compression: 'zstd',
    }),
    'WARDEN_E_WAL_LEVEL_MINIMAL',
  );
  assert.equal(existsSync(repoDir), false, 'no repository created');
});

test('backup refuses a server with max_wal_senders = 0 and writes nothing', async () => {
  const repoDir = path.join(noSenders.workDir, 'repo');
  await rejectsWithCode(
    takeBackup({
      connection: connectionOf(noSenders),
      store: new FsObjectStore(repoDir),
      slotName: 'warden',
      compression: 'zstd',
    }),
    'WARDEN_E_NO_WAL_SENDERS',
  );
  assert.equal(existsSync(repoDir), false, 'no repository created');
});

test('a WAL receiver against a server without WAL senders reports it and keeps retrying until stopped', async () => {
  const abort = new AbortController();
  const receiver = new WalReceiver({
    connection: connectionOf(noSenders),
    store: new FsObjectStore(path.join(noSenders.workDir, 'repo-receiver')),
    slotName: 'warden',
    signal: abort.signal,
  });
  const running = receiver.run();
  const deadline = Date.now() + 10_000;
  while (!receiver.status().lastError && Date.now() < deadline) await sleep(20);
  // All WAL senders busy is transient, so the receiver retries with backoff rather than failing.
  assert.equal(receiver.status().lastError?.code, 'WARDEN_E_NO_WAL_SENDERS');
  assert.equal(receiver.status().state, 'reconnecting');
  abort.abort();
  await running;
  assert.equal(receiver.status().state, 'stopped');
});
