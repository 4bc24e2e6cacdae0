import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { withRestored } from '../harness/restored.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { bytesUnder, connectionOf, killHard, sleep, spawnFixture } from './helpers.ts';

let cluster: TestCluster;
let child: ChildProcess | undefined;

before(async () => {
  cluster = await startCluster();
  // ~240 MB of incompressible-ish text, so a gzip backup takes seconds.
  await cluster.query(
    'CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 2000000) g',
  );
});
after(async () => {
  if (child) await killHard(child);
  await cluster?.stop();
});

test('a backup killed with SIGKILL is never listed; the next backup cleans up, takes the stale lock, and restores', async () => {
  const repoDir = path.join(cluster.workDir, 'repo');
  child = spawnFixture('take-backup.ts', {
    url: cluster.url(),
    repoDir,
    slotName: 'warden',
    compression: 'gzip',
    compressionLevel: 9,
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 30_000;
  while (
    (await bytesUnder(path.join(repoDir, 'backups'))) === 0 &&
    Date.now() < deadline &&
    child.exitCode === null
  )
    await sleep(20);
  await killHard(child);
  assert.equal(output, '', 'killed before the backup finished');
  assert.ok((await bytesUnder(path.join(repoDir, 'backups'))) > 0, 'the killed backup had written bytes');
  const lock = JSON.parse(await readFile(path.join(repoDir, 'locks', 'backup.lock'), 'utf8')) as {
    pid: number;
  };
  assert.equal(lock.pid, child.pid, 'the dead process left its lock behind');

  const store = new FsObjectStore(repoDir);
  assert.deepEqual(await listBackups(await Repository.open(store)), [], 'no backup listed as complete');

  const { backup } = await takeBackup({
    connection: connectionOf(cluster),
    store,
    slotName: 'warden',
    compression: 'zstd',
  });
  assert.deepEqual(
    await readdir(path.join(repoDir, 'backups')),
    [backup.id],
    'the unfinished directory was removed',
  );
  assert.deepEqual(
    (await listBackups(await Repository.open(store))).map((b) => b.id),
    [backup.id],
  );
  assert.equal(existsSync(path.join(repoDir, 'locks', 'backup.lock')), false, 'lock released');

  const count = await withRestored(
    cluster,
    store,
    'restored',
    { kind: 'backup', id: backup.id },
    async (client) => (await client.query<{ n: string }>('SELECT count(*) AS n FROM big')).rows[0]!.n,
  );
  assert.equal(Number(count), 2_000_000);
});
