import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory } from '../../src/repository/wal-archive.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;
let repoDir: string;

before(async () => {
  cluster = await startCluster();
  repoDir = await mkdtemp(path.join(os.tmpdir(), 'warden-repo-'));
  await cluster.query('CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g');
});
after(async () => {
  await cluster?.stop();
  await rm(repoDir, { recursive: true, force: true });
});

test('a base backup is committed with its archives, manifest and the WAL it needs', async () => {
  const store = new FsObjectStore(repoDir);
  const report = await takeBackup({
    connection: { ...connectionFromUrl(cluster.url()), tls: 'disable' },
    store,
    slotName: 'warden_test',
    compression: 'zstd',
  });
  assert.equal(report.backup.archives[0]?.archive, 'base.tar');
  const repository = await Repository.open(store);
  assert.deepEqual(
    (await listBackups(repository)).map((b) => b.id),
    [report.backup.id],
  );
  const inventory = await readWalInventory(repository);
  assert.ok((inventory.segments.get(1)?.length ?? 0) >= 1, 'WAL segments archived');
});

/** A directory store whose stat reports one object one byte short (storage that lost its tail). */
class ShortStatStore extends FsObjectStore {
  override async stat(key: string) {
    const info = await super.stat(key);
    return info && key.endsWith('/backup_manifest.zst') ? { size: info.size - 1 } : info;
  }
}

// The sizes are checked all at once (one round trip on an object store): a mismatch in any of
// them still fails the backup before its commit marker is written.
test('a backup whose stored object is not there with its size is not committed', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-repo-'));
  try {
    const store = new ShortStatStore(dir);
    await assert.rejects(
      takeBackup({
        connection: { ...connectionFromUrl(cluster.url()), tls: 'disable' },
        store,
        slotName: 'warden_test_sizes',
        compression: 'zstd',
      }),
      { code: 'WARDEN_E_REPO_CORRUPT' },
    );
    assert.deepEqual(await listBackups(await Repository.open(store)), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
