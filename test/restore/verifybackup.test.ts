import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { restore } from '../../src/restore/restore.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

const execFileAsync = promisify(execFile);
let cluster: TestCluster;

before(async () => {
  cluster = await startCluster();
  await cluster.query(
    'CREATE TABLE filler AS SELECT g AS id, repeat(md5(g::text), 8) AS v FROM generate_series(1, 20000) g',
  );
});
after(async () => cluster?.stop());

const variants = [
  { compression: 'zstd', serverCompression: false },
  { compression: 'gzip', serverCompression: false },
  { compression: 'none', serverCompression: false },
  { compression: 'zstd', serverCompression: true },
] as const;

for (const { compression, serverCompression } of variants) {
  const label = `${compression}${serverCompression ? '-server' : ''}`;
  test(`pg_verifybackup accepts a base backup materialized from the repository (${label})`, async () => {
    const store = new FsObjectStore(path.join(cluster.workDir, `repo-${label}`));
    const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
    const { backup } = await takeBackup({
      connection,
      store,
      slotName: `verify_${label.replace('-', '_')}`,
      compression,
    });
    const targetDir = path.join(cluster.workDir, `verify-${label}`);
    await restore({ store, target: { kind: 'backup', id: backup.id }, targetDir });
    // pg_verifybackup checks every file against backup_manifest and parses the WAL from start to end LSN.
    const { stdout } = await execFileAsync(path.join(cluster.instance.binaries.bindir, 'pg_verifybackup'), [
      '--manifest-path',
      path.join(targetDir, 'backup_manifest'),
      targetDir,
    ]).catch((error: { stderr?: string }) =>
      assert.fail(`pg_verifybackup rejected the backup: ${error.stderr}`),
    );
    assert.match(stdout, /successfully verified/);
  });
}
