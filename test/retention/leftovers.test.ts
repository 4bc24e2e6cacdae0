import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { listBackups, type BackupRecord } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { acquireLock } from '../../src/repository/repository-lock.ts';
import { readWalInventory, timelineDir } from '../../src/repository/wal-archive.ts';
import { expire } from '../../src/retention/expire.ts';
import { verifyRepository } from '../../src/verify/repository-verify.ts';
import { parseLsn, segmentName } from '../../src/wal/lsn.ts';
import { connectionOf } from '../faults/helpers.ts';
import { runWarden } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

/**
 * The leftovers of an interrupted `expire` (and of a backup killed early), made by hand the way
 * such a run leaves them: `verify` names them without failing, the next `expire` removes them
 * and nothing that a record points to.
 */
let cluster: TestCluster;
let repoDir: string;
let store: FsObjectStore;
const backups: BackupRecord[] = [];
const KEEP_ALL = { keepLast: 100 };

before(async () => {
  cluster = await startCluster();
  repoDir = path.join(cluster.workDir, 'repo');
  store = new FsObjectStore(repoDir);
  await cluster.query('CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g');
  for (let i = 0; i < 3; i += 1) {
    // Two segment switches between backups: WAL that only the first backup needs.
    for (let j = 0; j < 2; j += 1) {
      await cluster.query('INSERT INTO t SELECT g FROM generate_series(1, 1000) g');
      await cluster.query('SELECT pg_switch_wal()');
    }
    const { backup } = await takeBackup({
      connection: connectionOf(cluster),
      store,
      slotName: 'warden',
      compression: 'zstd',
    });
    backups.push(backup);
  }
});
after(async () => cluster?.stop());

/** Every key a record points to, or that is a record: what must survive any cleanup. */
async function committedKeys(): Promise<string[]> {
  const all = await store.list('');
  // Locks come and go; the audit log grows with each command it records.
  return all.filter((key) => !key.startsWith('locks/') && !key.startsWith('audit/'));
}

test('verify names what an interrupted expire left; the next expire removes exactly that', async () => {
  const first = backups[0]!;
  const second = backups[1]!;
  // An expire stopped after uncommitting the oldest backup (backup.json goes first) ...
  await rm(path.join(repoDir, 'backups', first.id, 'backup.json'));
  // ... and after deleting the record of a WAL segment only that backup needed (record first).
  const repository = await Repository.open(store);
  const inventory = await readWalInventory(repository);
  const records = inventory.segments.get(first.timeline)!;
  const orphan = records.find((r) => parseLsn(r.startLsn) < parseLsn(second.startLsn) - 16n * 1024n * 1024n);
  assert.ok(orphan, 'a segment before the second backup');
  await rm(path.join(repoDir, `${timelineDir(orphan.timeline)}${orphan.segment}.json`));
  // A backup killed right after creating its directory.
  await mkdir(path.join(repoDir, 'backups', '20260101-000000F', 'pg_tblspc'), { recursive: true });
  const orphanKey = `${timelineDir(orphan.timeline)}${orphan.segment}.zst`;
  const mustStay = (await committedKeys()).filter(
    (key) => !key.startsWith(`backups/${first.id}/`) && key !== orphanKey,
  );

  const verified = await verifyRepository({ store });
  assert.equal(verified.ok, true, JSON.stringify(verified.problems));
  assert.deepEqual(
    verified.leftovers.uncommittedBackups.map((b) => b.id),
    [first.id],
  );
  assert.deepEqual(verified.leftovers.walWithoutRecord, [orphanKey]);
  assert.deepEqual(verified.leftovers.emptyDirectories, ['backups/20260101-000000F/']);
  const cli = await runWarden(['verify', '--repo', repoDir, '--allow-unsigned'], { cwd: cluster.workDir });
  assert.equal(cli.code, 0, 'leftovers are findings, not problems');
  assert.match(cli.stdout, new RegExp(`backups/${first.id}/ +uncommitted backup`));
  assert.match(cli.stdout, new RegExp(`${orphanKey} +WAL data without its record`));

  const dry = await expire({ store, policy: KEEP_ALL, dryRun: true });
  assert.equal(dry.leftovers.walWithoutRecord.length, 1);
  assert.equal(dry.deleted.leftovers, 0);
  assert.ok(existsSync(path.join(repoDir, orphanKey)), 'a dry run removes nothing');

  const report = await expire({ store, policy: KEEP_ALL });
  assert.deepEqual(report.deleted.backups, [], 'the policy keeps every committed backup');
  assert.equal(report.deleted.leftovers, 3);
  assert.deepEqual(await readdir(path.join(repoDir, 'backups')), [second.id, backups[2]!.id].sort());
  assert.equal(existsSync(path.join(repoDir, orphanKey)), false);
  // The WAL only the uncommitted backup needed goes by the policy, as it would have anyway.
  const expired = new Set(report.plan.walToDelete.flatMap((segment) => segment.keys));
  const secondSegment = segmentName(second.timeline, parseLsn(second.startLsn), 16 * 1024 * 1024);
  for (const segment of report.plan.walToDelete)
    assert.ok(segment.segment < secondSegment, 'only WAL before the kept backups');
  assert.deepEqual(
    await committedKeys(),
    mustStay.filter((key) => !expired.has(key)),
    'every other committed object is still there',
  );
  assert.deepEqual(
    (await listBackups(await Repository.open(store))).map((b) => b.id),
    [second.id, backups[2]!.id],
  );
  const afterwards = await verifyRepository({ store });
  assert.equal(afterwards.ok, true, JSON.stringify(afterwards.problems));
  assert.equal(
    afterwards.leftovers.uncommittedBackups.length + afterwards.leftovers.walWithoutRecord.length,
    0,
  );
  assert.deepEqual(afterwards.leftovers.emptyDirectories, []);
  assert.ok(afterwards.backups.every((b) => b.restorable));
});

test('what a running backup or WAL receiver may still be writing is never a leftover', async () => {
  const repository = await Repository.open(store);
  const inventory = await readWalInventory(repository);
  const records = inventory.segments.get(backups[2]!.timeline)!;
  // The newest segment's data without its record: exactly what a receiver leaves for a moment.
  const head = records.at(-1)!;
  const behind = records.at(-3)!;
  const headKey = `${timelineDir(head.timeline)}${head.segment}.zst`;
  const behindKey = `${timelineDir(behind.timeline)}${behind.segment}.zst`;
  await rm(path.join(repoDir, `${timelineDir(head.timeline)}${head.segment}.json`));
  await rm(path.join(repoDir, `${timelineDir(behind.timeline)}${behind.segment}.json`));
  // A backup in progress: its directory has no backup.json yet.
  await mkdir(path.join(repoDir, 'backups', '20991231-000000F'), { recursive: true });
  await store.putBuffer('backups/20991231-000000F/base.tar.zst', Buffer.from('in progress'));

  const backupLock = await acquireLock(store, 'backup', 'a backup in progress (test)');
  const walLock = await acquireLock(store, 'wal-stream', 'a WAL receiver (test)');
  try {
    const verified = await verifyRepository({ store });
    assert.deepEqual(verified.leftovers.uncommittedBackups, [], 'a running backup is skipped');
    assert.deepEqual(verified.leftovers.walWithoutRecord, [behindKey], 'the head may be in progress');
    assert.equal(verified.leftovers.skipped.length, 2);
  } finally {
    await backupLock.release();
  }
  try {
    const report = await expire({ store, policy: KEEP_ALL });
    assert.deepEqual(report.leftovers.walWithoutRecord, [behindKey]);
    assert.equal(existsSync(path.join(repoDir, headKey)), true, 'the head segment is kept');
    assert.equal(existsSync(path.join(repoDir, behindKey)), false);
    // Under its own backup lock, expire knows no backup runs: the directory is a leftover.
    assert.deepEqual(
      report.leftovers.uncommittedBackups.map((b) => b.id),
      ['20991231-000000F'],
    );
  } finally {
    await walLock.release();
  }
  // No receiver any more: the head's data without a record is a leftover too.
  const last = await expire({ store, policy: KEEP_ALL });
  assert.deepEqual(last.leftovers.walWithoutRecord, [headKey]);
  assert.equal(existsSync(path.join(repoDir, headKey)), false);

  // A receiver that died between storing a segment's data and its record: the `.partial` is
  // still there (removed only after the record), so the next receiver archives it again.
  const [partial] = (await readWalInventory(await Repository.open(store))).partials;
  assert.ok(partial, 'the catch-up left the segment being received');
  const dataKey = `${timelineDir(partial.timeline)}${partial.segment}.zst`;
  await store.putBuffer(dataKey, Buffer.from('archived data, record not yet written'));
  const withPartial = await expire({ store, policy: KEEP_ALL });
  assert.deepEqual(withPartial.leftovers.walWithoutRecord, []);
  assert.equal(existsSync(path.join(repoDir, dataKey)), true);
});

test('the next backup removes an empty directory a backup killed early left', async () => {
  const killed = path.join(repoDir, 'backups', '20260101-000001F');
  await mkdir(killed, { recursive: true });
  const { backup } = await takeBackup({
    connection: connectionOf(cluster),
    store,
    slotName: 'warden',
    compression: 'zstd',
  });
  assert.equal(existsSync(killed), false);
  assert.ok(existsSync(path.join(repoDir, 'backups', backup.id, 'backup.json')));
});
