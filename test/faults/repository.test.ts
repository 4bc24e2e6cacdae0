import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup, type BackupReport } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { getBackup, listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { restore } from '../../src/restore/restore.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { connectionOf, rejectsWithCode, sleep, snapshotTree } from './helpers.ts';

let clusterA: TestCluster;
let clusterB: TestCluster;
let repoDir: string;
let store: FsObjectStore;
let first: BackupReport;
let beforeFirstBackup: Date;

before(async () => {
  [clusterA, clusterB] = await Promise.all([startCluster(), startCluster()]);
  repoDir = path.join(clusterA.workDir, 'repo');
  store = new FsObjectStore(repoDir);
  await clusterA.query(
    'CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 10000) g',
  );
  beforeFirstBackup = new Date();
  await sleep(1_100);
  first = await takeBackup({
    connection: connectionOf(clusterA),
    store,
    slotName: 'warden',
    compression: 'zstd',
  });
});
after(async () => {
  await Promise.all([clusterA?.stop(), clusterB?.stop()]);
});

function targetDir(name: string): string {
  return path.join(clusterA.workDir, name);
}

test('an unknown backup id is reported as not found, by the catalogue and by restore', async () => {
  const repository = await Repository.open(store);
  const error = await rejectsWithCode(getBackup(repository, 'nope'), 'WARDEN_E_BACKUP_NOT_FOUND');
  assert.deepEqual(error.details.known, [first.backup.id]);
  const dir = targetDir('restore-unknown');
  await rejectsWithCode(
    restore({ store, target: { kind: 'backup', id: 'nope' }, targetDir: dir }),
    'WARDEN_E_BACKUP_NOT_FOUND',
  );
  assert.equal(existsSync(dir), false, 'the target directory restore created is removed again');
});

test('a restore target time after the restorable window is refused with the window', async () => {
  const dir = targetDir('restore-future');
  const error = await rejectsWithCode(
    restore({ store, target: { kind: 'time', time: new Date(Date.now() + 3_600_000) }, targetDir: dir }),
    'WARDEN_E_TARGET_OUTSIDE_WINDOW',
  );
  const window = error.details.window as { earliest?: string; latest?: string };
  assert.equal(window.earliest, first.backup.endTime);
  assert.ok(
    window.latest && Date.parse(window.latest) >= Date.parse(window.earliest!),
    'window has a latest point',
  );
  assert.equal(existsSync(dir), false);
});

test('a restore target time before the first backup is refused with the window', async () => {
  const dir = targetDir('restore-past');
  const error = await rejectsWithCode(
    restore({ store, target: { kind: 'time', time: beforeFirstBackup }, targetDir: dir }),
    'WARDEN_E_TARGET_OUTSIDE_WINDOW',
  );
  const window = error.details.window as { earliest?: string; latest?: string };
  assert.ok(window.earliest && window.latest, 'window has earliest and latest');
  assert.ok(beforeFirstBackup.getTime() < Date.parse(window.earliest));
  assert.equal(existsSync(dir), false);
});

test('a restore target LSN beyond the archived WAL is refused with the window', async () => {
  const dir = targetDir('restore-lsn');
  const error = await rejectsWithCode(
    restore({ store, target: { kind: 'lsn', lsn: parseLsn('FF/0') }, targetDir: dir }),
    'WARDEN_E_TARGET_OUTSIDE_WINDOW',
  );
  assert.ok((error.details.window as { latestLsn?: string }).latestLsn, 'window names the last archived LSN');
  assert.equal(existsSync(dir), false);
});

test('restore refuses a non-empty target directory and leaves its content untouched', async () => {
  const dir = targetDir('restore-occupied');
  await mkdir(path.join(dir, 'sub'), { recursive: true });
  await writeFile(path.join(dir, 'PG_VERSION'), '15\n');
  await writeFile(path.join(dir, 'sub', 'precious.dat'), 'do not touch');
  const before = await snapshotTree(dir);
  await rejectsWithCode(
    restore({ store, target: { kind: 'latest' }, targetDir: dir }),
    'WARDEN_E_TARGET_NOT_EMPTY',
  );
  assert.deepEqual(await snapshotTree(dir), before);
});

test('backing up another cluster into a repository is refused and the repository is unchanged', async () => {
  const before = await snapshotTree(repoDir);
  await rejectsWithCode(
    takeBackup({ connection: connectionOf(clusterB), store, slotName: 'warden', compression: 'zstd' }),
    'WARDEN_E_REPO_CLUSTER_MISMATCH',
  );
  const receiver = new WalReceiver({ connection: connectionOf(clusterB), store, slotName: 'warden' });
  await rejectsWithCode(receiver.run(), 'WARDEN_E_REPO_CLUSTER_MISMATCH');
  // A receiver that gave up says so (status and the daemon's findings read it).
  assert.equal(receiver.status().state, 'failed');
  assert.deepEqual(await snapshotTree(repoDir), before);
  // Nothing was created on B either: the slot is only made once the repository is accepted.
  assert.deepEqual(await clusterB.query('SELECT slot_name FROM pg_replication_slots'), []);
});

test('a second concurrent backup into the same repository is refused while the first completes', async () => {
  await clusterA.query(
    'CREATE TABLE bulk AS SELECT g AS id, md5(g::text) || md5((g * 3)::text) AS v FROM generate_series(1, 400000) g',
  );
  const running = takeBackup({
    connection: connectionOf(clusterA),
    store,
    slotName: 'warden',
    compression: 'gzip',
    compressionLevel: 9,
  });
  const lockFile = path.join(repoDir, 'locks', 'backup.lock');
  const deadline = Date.now() + 30_000;
  while (!existsSync(lockFile) && Date.now() < deadline) await sleep(5);
  assert.ok(existsSync(lockFile), 'the first backup holds the lock');
  const error = await rejectsWithCode(
    takeBackup({ connection: connectionOf(clusterA), store, slotName: 'warden', compression: 'zstd' }),
    'WARDEN_E_REPO_LOCKED',
  );
  assert.equal((error.details.holder as { pid: number }).pid, process.pid);
  const second = await running;
  const ids = (await listBackups(await Repository.open(store))).map((b) => b.id);
  assert.deepEqual(ids, [first.backup.id, second.backup.id]);
});
