import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { copyRepository } from '../../src/repository/repository-copy.ts';
import { Repository } from '../../src/repository/repository.ts';
import { verifyRepository } from '../../src/verify/repository-verify.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { streamInto, type StreamingRepository } from '../harness/streaming.ts';

// A copy holds a backup only with the WAL it needs: a backup whose last segment is still the
// partial being received (not copied) waits for the pass after that segment is archived. A CI
// run of the daemon's copyTo once copied such a backup, and `verify` of the copy found the gap.

let cluster: TestCluster;
let stream: StreamingRepository<FsObjectStore>;
let copyDir: string;
before(async () => {
  cluster = await startCluster();
  stream = streamInto(cluster, { slotName: 'warden_copy_wait' });
  copyDir = await mkdtemp(path.join(os.tmpdir(), 'warden-copy-wait-'));
});
after(async () => {
  await stream?.stop();
  await cluster?.stop();
  await rm(copyDir, { recursive: true, force: true });
});

test(
  'a backup whose last WAL segment is still partial is copied by the pass after it is archived',
  { timeout: 180_000 },
  async () => {
    await stream.waitForArchive();
    const backup = await takeBackup({
      connection: stream.connection,
      store: stream.store,
      compression: 'zstd',
    });
    const target = new FsObjectStore(copyDir);

    // Whatever the stream did meanwhile (its segment may have completed and been archived), a
    // backup in the copy has its WAL: it is copied with its last segment or waits for it.
    const first = await copyRepository(stream.store, target);
    assert.deepEqual([...first.backups, ...first.waitingForWal], [backup.backup.id]);
    const early = await verifyRepository({ store: target });
    assert.ok(early.ok, JSON.stringify(early.problems, null, 2));

    // The segment completes (a switch), the stream archives it; a later pass copies the backup.
    await cluster.query('SELECT pg_switch_wal()');
    await cluster.query('CREATE TABLE after_switch AS SELECT 1 AS one');
    await stream.waitForArchive();
    const inTarget = async () => (await listBackups(await Repository.open(target))).map((b) => b.id);
    for (let pass = 0; pass < 100 && (await inTarget()).length === 0; pass += 1) {
      await copyRepository(stream.store, target);
      if ((await inTarget()).length === 0) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.deepEqual(await inTarget(), [backup.backup.id]);
    const verify = await verifyRepository({ store: target });
    assert.ok(verify.ok, JSON.stringify(verify.problems, null, 2));
  },
);
