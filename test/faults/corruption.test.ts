import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { BackupReport } from '../../src/backup/base-backup.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory, segmentDataKey } from '../../src/repository/wal-archive.ts';
import { restore } from '../../src/restore/restore.ts';
import { parseLsn, segmentStart } from '../../src/wal/lsn.ts';
import { withRestored } from '../harness/restored.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { backupWithWalTail, flipByte, rejectsWithCode } from './helpers.ts';

let cluster: TestCluster;
let repoDir: string;
let store: FsObjectStore;
let backup: BackupReport['backup'];
let rows = 0;

before(async () => {
  cluster = await startCluster();
  repoDir = path.join(cluster.workDir, 'repo');
  store = new FsObjectStore(repoDir);
  backup = await backupWithWalTail(cluster, store, 50000);
  rows = Number(
    ((await cluster.query<{ n: string }>('SELECT count(*) AS n FROM t')) as [{ n: string }])[0].n,
  );
});
after(async () => {
  await cluster?.stop();
});

async function middleOf(key: string): Promise<number> {
  return Math.floor((await stat(path.join(repoDir, key))).size / 2);
}

test('a flipped byte in a stored base backup archive fails the restore naming the object', async () => {
  const key = backup.archives.find((a) => a.archive === 'base.tar')!.key;
  assert.equal(key, `backups/${backup.id}/base.tar.zst`);
  const offset = await middleOf(key);
  await flipByte(path.join(repoDir, key), offset);
  try {
    const dir = path.join(cluster.workDir, 'restore-bad-archive');
    const error = await rejectsWithCode(
      restore({ store, target: { kind: 'latest' }, targetDir: dir }),
      'WARDEN_E_REPO_CORRUPT',
    );
    assert.equal(error.details.object, key);
    assert.equal(existsSync(dir), false, 'the half-restored target is removed');
    // An empty directory given by the user stays, emptied again.
    const given = path.join(cluster.workDir, 'restore-bad-archive-given');
    await mkdir(given);
    await rejectsWithCode(
      restore({ store, target: { kind: 'latest' }, targetDir: given }),
      'WARDEN_E_REPO_CORRUPT',
    );
    assert.deepEqual(await readdir(given), []);
  } finally {
    await flipByte(path.join(repoDir, key), offset);
  }
});

test('a flipped byte in an archived WAL segment fails the restore that needs it, naming the segment', async () => {
  const repository = await Repository.open(store);
  const first = segmentStart(parseLsn(backup.startLsn), repository.meta.walSegmentSize);
  const needed = (await readWalInventory(repository)).segments
    .get(1)!
    .filter((s) => parseLsn(s.startLsn) >= first);
  assert.ok(needed.length >= 3, `restore to latest needs several segments (has ${needed.length})`);
  // Not the first one: the restore reads the next segment ahead while writing the current one.
  const key = segmentDataKey(1, needed[1]!.segment);
  assert.match(key, /^wal\/00000001\/[0-9A-F]{24}\.zst$/);
  const offset = await middleOf(key);
  await flipByte(path.join(repoDir, key), offset);
  try {
    const dir = path.join(cluster.workDir, 'restore-bad-wal');
    const error = await rejectsWithCode(
      restore({ store, target: { kind: 'latest' }, targetDir: dir }),
      'WARDEN_E_REPO_CORRUPT',
    );
    assert.equal(error.details.object, key);
    assert.equal(existsSync(dir), false, 'the half-restored target is removed');
  } finally {
    await flipByte(path.join(repoDir, key), offset);
  }
});

test('with the bytes put back, the same restore succeeds with every row', async () => {
  const count = await withRestored(
    cluster,
    store,
    'restore-good',
    { kind: 'latest' },
    async (client) => (await client.query<{ n: string }>('SELECT count(*) AS n FROM t')).rows[0]!.n,
  );
  assert.equal(Number(count), rows);
});
