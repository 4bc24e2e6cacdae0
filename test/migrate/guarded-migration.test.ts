import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { listAudit } from '../../src/audit/audit-log.ts';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { SpawnedWardens, type SpawnedWarden } from '../harness/spawned-warden.ts';

// Issue 16, guarded migrations: one deploy migrates at a time, the state before a migration is
// restorable to the exact point, and a failed migration ends with the restore command back to it.

const PSQL = path.join('/usr/lib/postgresql/15/bin', 'psql');
let cluster: TestCluster;
let db: string;
let repo: string;
let stream: SpawnedWarden;
const wardens = new SpawnedWardens();

before(async () => {
  cluster = await startCluster();
  db = `${cluster.url()}?sslmode=disable`;
  repo = path.join(cluster.workDir, 'repo');
  await cluster.query('CREATE TABLE accounts (id int PRIMARY KEY, balance numeric NOT NULL)');
  await cluster.query('INSERT INTO accounts SELECT g, g * 10 FROM generate_series(1, 2000) g');
  // The deploy setup the restore point relies on: the repository's stream runs (as the daemon's does).
  stream = wardens.spawn(['wal', 'stream', '--db', db, '--repo', repo, '--no-encryption'], {
    cwd: cluster.workDir,
  });
  const backup = await cli(['backup']);
  assert.equal(backup.code, 0, backup.stderr);
});
after(async () => {
  await wardens.killAll();
  await cluster?.stop();
});

function cli(args: string[]): Promise<CliRun> {
  return runWarden([...args, '--db', db, '--repo', repo, '--no-encryption'], { cwd: cluster.workDir });
}

/** `warden migrate -- psql …`, the wrapped tool being plain psql with ON_ERROR_STOP. */
function migrate(sql: string[], extra: string[] = []): Promise<CliRun> {
  const psql = [PSQL, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db, ...sql.flatMap((s) => ['-c', s])];
  const globals = ['--db', db, '--repo', repo, '--no-encryption'];
  return runWarden(['migrate', ...globals, '--lock-timeout', '5m', ...extra, '--', ...psql], {
    cwd: cluster.workDir,
  });
}

test('two concurrent migrations run one after the other, and the wrapped tool applies its change once', async () => {
  await cluster.query('CREATE TABLE runs (id serial, started_at timestamptz, ended_at timestamptz)');
  await cluster.query('CREATE TABLE schema_version (v int PRIMARY KEY)');
  const step = [
    'INSERT INTO runs (started_at) VALUES (clock_timestamp())',
    'SELECT pg_sleep(3)',
    'INSERT INTO schema_version SELECT 2 WHERE NOT EXISTS (SELECT 1 FROM schema_version WHERE v = 2)',
    'UPDATE runs SET ended_at = clock_timestamp() WHERE ended_at IS NULL',
  ];
  const [first, second] = await Promise.all([migrate(step), migrate(step)]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(
    [first, second].filter((run) => run.stderr.includes('waiting for another migration')).length,
    1,
    first.stderr + second.stderr,
  );
  const runs = await cluster.query<{ started_at: Date; ended_at: Date }>(
    'SELECT started_at, ended_at FROM runs ORDER BY started_at',
  );
  assert.equal(runs.length, 2);
  assert.ok(runs[0]!.ended_at <= runs[1]!.started_at, 'the second migration started after the first ended');
  assert.deepEqual(await cluster.query('SELECT v FROM schema_version'), [{ v: 2 }]);

  // Both are recorded in the repository: the migration records and the audit log.
  const repository = await Repository.open(new FsObjectStore(repo));
  const migrations = (await repository.store.list('migrations/')).filter((k) => k.endsWith('.json'));
  assert.equal(migrations.length, 2);
  const status = await cli(['migrate', 'status', '--json']);
  assert.equal(status.code, 0, status.stderr);
  const shown = JSON.parse(status.stdout) as {
    schema: { tracked: boolean };
    migrations: Array<{ outcome: string }>;
  };
  assert.equal(shown.schema.tracked, false);
  assert.deepEqual(
    shown.migrations.map((m) => m.outcome),
    ['succeeded', 'succeeded'],
  );
  const audited = (await listAudit(repository)).filter((r) => r.action === 'migrate');
  assert.deepEqual(
    audited.map((r) => [r.outcome, r.target]),
    [
      ['succeeded', 'psql'],
      ['succeeded', 'psql'],
    ],
  );
});

test('a failing migration prints the restore command, and it brings back the state from before exactly', async () => {
  const fingerprint =
    'SELECT md5(string_agg(id || ":" || balance, "," ORDER BY id)) AS sum FROM accounts'.replace(/"/g, "'");
  const [before] = await cluster.query<{ sum: string }>(fingerprint);
  const run = await migrate(
    ['ALTER TABLE accounts ADD COLUMN note text', 'UPDATE accounts SET balance = 0', 'SELECT 1/0'],
    ['--json'],
  );
  assert.equal(run.code, 7, run.stdout + run.stderr);
  const error = (JSON.parse(run.stdout) as { error: { code: string; details: { rollback: string } } }).error;
  assert.equal(error.code, 'WARDEN_E_MIGRATION_FAILED');
  // The migration did change the cluster before it failed.
  const [after] = await cluster.query<{ sum: string }>(fingerprint);
  assert.notEqual(after!.sum, before!.sum);

  const targetDir = path.join(cluster.workDir, 'rolled-back');
  const printed = error.details.rollback.split(' ');
  assert.equal(printed[0], 'warden');
  const args = printed.slice(1).map((arg) => (arg === '<NEW-EMPTY-DIR>' ? targetDir : arg));
  const restored = await runWarden([...args, '--no-encryption', '--json'], { cwd: cluster.workDir });
  assert.equal(restored.code, 0, restored.stdout + restored.stderr);
  const { port } = JSON.parse(restored.stdout) as { port: number };
  const instance = new LocalInstance({ binaries: cluster.instance.binaries, dataDir: targetDir, port });
  try {
    await withClient(cluster.url().replace(`:${cluster.port}/`, `:${port}/`), async (client) => {
      const { rows } = await client.query<{ sum: string }>(fingerprint);
      assert.equal(rows[0]!.sum, before!.sum);
      const columns = await client.query(
        "SELECT 1 FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'note'",
      );
      assert.equal(columns.rowCount, 0, 'the column the migration added is not there');
    });
  } finally {
    await instance.stop({ mode: 'immediate' });
  }
  assert.equal(stream.child.exitCode, null, stream.output());
});

test('a migration waits at most --lock-timeout for another one', async () => {
  const holder = await withClient(cluster.url(), async (client) => {
    await client.query('SELECT pg_advisory_lock(8602282538778389865)');
    const run = await migrate(['SELECT 1'], ['--lock-timeout', '2s', '--json']);
    await client.query('SELECT pg_advisory_unlock(8602282538778389865)');
    return run;
  });
  assert.equal(holder.code, 6, holder.stdout + holder.stderr);
  assert.equal(
    (JSON.parse(holder.stdout) as { error: { code: string } }).error.code,
    'WARDEN_E_MIGRATION_LOCKED',
  );
});
