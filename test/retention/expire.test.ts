import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { isWardenError } from '../../src/errors.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { acquireLock } from '../../src/repository/repository-lock.ts';
import { readWalInventory } from '../../src/repository/wal-archive.ts';
import { restore } from '../../src/restore/restore.ts';
import { deleteBackup } from '../../src/retention/delete-backup.ts';
import { expire } from '../../src/retention/expire.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;
let store: FsObjectStore;
const abort = new AbortController();
let receiverDone: Promise<void>;
let flushed = 0n;
const backupIds: string[] = [];
/** Rows in the table when each backup started, and at the end. */
const rowsAtBackup: number[] = [];
let totalRows = 0;

async function writeRowsAndSwitch(count: number): Promise<void> {
  await withClient(cluster.url(), async (client) => {
    await client.query('INSERT INTO expire_probe SELECT g FROM generate_series($1::int, $2::int) g', [
      totalRows + 1,
      totalRows + count,
    ]);
    totalRows += count;
    await client.query('SELECT pg_switch_wal()');
  });
}

async function waitForArchive(): Promise<void> {
  await withClient(cluster.url(), async (client) => {
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const target = parseLsn(rows[0]!.lsn);
    const deadline = Date.now() + 30_000;
    while (flushed < target && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  });
}

before(async () => {
  cluster = await startCluster();
  store = new FsObjectStore(path.join(cluster.workDir, 'repo'));
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  await cluster.query('CREATE TABLE expire_probe (i int)');
  const receiver = new WalReceiver({
    connection,
    store,
    slotName: 'warden',
    signal: abort.signal,
    onFlush: (lsn) => (flushed = lsn),
  });
  receiverDone = receiver.run().catch((error) => {
    if (!abort.signal.aborted) throw error;
  });
  // four backups with WAL between them; the second is named
  for (let i = 0; i < 4; i += 1) {
    await writeRowsAndSwitch(100);
    rowsAtBackup.push(totalRows);
    const report = await takeBackup({
      connection,
      store,
      slotName: 'warden',
      compression: 'zstd',
      ...(i === 1 ? { name: 'pre-v1.13.0-upgrade' } : {}),
    });
    backupIds.push(report.backup.id);
  }
  await writeRowsAndSwitch(100);
  await writeRowsAndSwitch(100);
  await waitForArchive();
});

after(async () => {
  abort.abort();
  await receiverDone;
  await cluster?.stop();
});

async function restoredRows(name: string, target: Parameters<typeof restore>[0]['target']): Promise<number> {
  const targetDir = path.join(cluster.workDir, name);
  const report = await restore({ store, target, targetDir, start: true });
  const instance = new LocalInstance({
    binaries: cluster.instance.binaries,
    dataDir: targetDir,
    port: report.port!,
  });
  try {
    return await withClient(
      cluster.url().replace(`:${cluster.port}/`, `:${report.port}/`),
      async (client) => {
        const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM expire_probe');
        return Number(rows[0]!.n);
      },
    );
  } finally {
    await instance.stop({ mode: 'immediate' });
  }
}

test('expire refuses to run while a backup holds the repository lock', async () => {
  const lock = await acquireLock(store, 'backup', 'a backup');
  try {
    await assert.rejects(expire({ store, policy: { keepLast: 2 } }), (error) =>
      isWardenError(error, 'WARDEN_E_REPO_LOCKED'),
    );
  } finally {
    await lock.release();
  }
});

test('expire --dry-run reports the plan and deletes nothing', async () => {
  const repository = await Repository.open(store);
  const segmentsBefore = [...(await readWalInventory(repository)).segments.values()].flat().length;
  const report = await expire({ store, policy: { keepLast: 2 }, dryRun: true });
  assert.deepEqual(
    report.plan.expire.map((b) => [b.id, b.rule]),
    [[backupIds[0], 'keep-last']],
  );
  assert.ok(report.plan.walToDelete.length > 0, 'WAL before the oldest kept backup would go');
  assert.equal((await listBackups(repository)).length, 4);
  assert.equal([...(await readWalInventory(repository)).segments.values()].flat().length, segmentsBefore);
  assert.ok(report.steps.some((s) => s.name === 'delete backups' && s.status === 'skipped'));
});

test('expire keeps the newest two and the named backup, then both the oldest kept and latest restore', async () => {
  const report = await expire({ store, policy: { keepLast: 2 } });
  assert.deepEqual(report.deleted.backups, [backupIds[0]]);
  const named = report.plan.keep.find((b) => b.id === backupIds[1])!;
  assert.deepEqual(
    named.reasons.map((r) => r.rule),
    ['named'],
  );
  const repository = await Repository.open(store);
  const left = await listBackups(repository);
  assert.deepEqual(
    left.map((b) => b.id),
    backupIds.slice(1),
  );
  assert.ok(report.deleted.walSegments > 0);
  // nothing of the expired backup remains
  assert.deepEqual(await store.list(`backups/${backupIds[0]}/`, { includeIncomplete: true }), []);
  // a second run finds nothing more to do
  const again = await expire({ store, policy: { keepLast: 2 } });
  assert.equal(again.plan.expire.length, 0);
  assert.equal(again.plan.walToDelete.length, 0);

  assert.ok((await restoredRows('oldest-kept', { kind: 'backup', id: backupIds[1]! })) >= rowsAtBackup[1]!);
  assert.equal(await restoredRows('latest', { kind: 'latest' }), totalRows);
});

test('backup delete refuses the newest restorable backup and deletes a named one explicitly', async () => {
  await assert.rejects(deleteBackup({ store, backup: backupIds[3]! }), (error) =>
    isWardenError(error, 'WARDEN_E_BACKUP_PROTECTED'),
  );
  const deleted = await deleteBackup({ store, backup: 'pre-v1.13.0-upgrade' });
  assert.equal(deleted.id, backupIds[1]);
  const left = await listBackups(await Repository.open(store));
  assert.deepEqual(
    left.map((b) => b.id),
    backupIds.slice(2),
  );
});
