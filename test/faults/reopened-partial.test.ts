import assert from 'node:assert/strict';
import { watch } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { durableWal, formatLsn, verifyListed, WardenCli, type BackupListing } from './cli-faults.ts';

// Issue 11, fault suite: a run that continues the repository's partial segment must never lose
// the part of it the repository already held. Found by the backup kill loop: SegmentWriter.open()
// (src/backup/segment-writer.ts) truncates the existing partial to 0 bytes and restreams the
// segment from its start; killed before its first sync, the repository has lost WAL it had made
// durable — here the WAL of the backup before, which `backup list` still lists.

const ATTEMPTS = 3;
let cluster: TestCluster;
let cli: WardenCli;

before(async () => {
  cluster = await startCluster();
  cli = new WardenCli(cluster, path.join(cluster.workDir, 'repo'));
  await cluster.query('CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g');
});
after(async () => {
  await cli?.killAll();
  await cluster?.stop();
});

/** The partial segments of the repository and their sizes. */
async function partials(): Promise<Map<string, number>> {
  const dir = path.join(cli.repoDir, 'wal');
  const sizes = new Map<string, number>();
  for (const file of await readdir(dir, { recursive: true })) {
    if (!file.endsWith('.partial')) continue;
    const size = await stat(path.join(dir, file)).then(
      (s) => s.size,
      () => undefined,
    );
    if (size !== undefined) sizes.set(file, size);
  }
  return sizes;
}

test(`a backup SIGKILLed the moment it reopens the partial segment the backup before ended in loses none of that WAL (${ATTEMPTS} kills)`, async (t) => {
  let truncatedAtKill = 0;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt += 1) {
    await cli.json(['backup']);
    const held = await durableWal(cli.repoDir);
    const before = await partials();
    assert.ok(before.size > 0, 'a one-off backup ends its WAL in a partial segment');
    const [name, size] = [...before][0]!;
    const file = path.join(cli.repoDir, 'wal', name);
    const backup = cli.spawn(['backup', '--json']);
    // Kill when the partial first shrinks (the next run reopened it), or when it is gone.
    const watcher = watch(path.dirname(file));
    const shrunk = new Promise<void>((resolve) => {
      watcher.on('change', () => {
        void stat(file).then(
          (s) => s.size < size && resolve(),
          () => resolve(),
        );
      });
    });
    try {
      await Promise.race([shrunk, backup.exited]);
      if (await backup.kill()) truncatedAtKill += 1;
    } finally {
      watcher.close();
    }
    const after = await durableWal(cli.repoDir);
    assert.ok(
      after.contiguousEnd >= held.contiguousEnd,
      `attempt ${attempt}: the repository held WAL up to ${formatLsn(held.contiguousEnd)}, after the kill only up to ${formatLsn(after.contiguousEnd)}`,
    );
    const listed = (await cli.json<BackupListing>(['backup', 'list'])).backups.map((b) => b.id);
    await verifyListed(cli, listed);
  }
  t.diagnostic(`${ATTEMPTS} backups, ${truncatedAtKill} killed right after reopening the partial`);
});
