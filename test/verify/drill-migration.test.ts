import assert from 'node:assert/strict';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createLedger } from '../../src/embedded/ledger.ts';
import { ensureHeartbeatTable, writeHeartbeat } from '../../src/postgres/heartbeat.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { findServerBinaries } from '../../src/postgres/server-binaries.ts';
import { resolveDaemonPlan } from '../../src/daemon/daemon-config.ts';
import { silentLogger } from '../../src/logger.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';
import type { DrillReport } from '../../src/verify/drill.ts';
import { runDrillMigration } from '../../src/verify/drill-migration.ts';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';

/**
 * `warden drill --migrate -- CMD` on real PostgreSQL: the pending migrations run on the restored
 * copy (never the source), their outcome is in the drill report, and a failing one fails the
 * drill with its own code while RTO/RPO are still measured and reported.
 */

let cluster: TestCluster;
let cwd: string;
const warden = (args: string[]): Promise<CliRun> => runWarden(args, { cwd });
const APP_MIGRATE = fileURLToPath(new URL('../../packages/app/src/migrate/index.ts', import.meta.url));

const sourceTables = () =>
  withClient(cluster.url(), async (client) => {
    const { rows } = await client.query<{ name: string }>(
      "SELECT tablename AS name FROM pg_tables WHERE tablename IN ('drill_added', 'drill_partial', 'warden_schema_history')",
    );
    return rows.map((r) => r.name);
  });

before(async () => {
  cluster = await startCluster();
  cwd = path.join(cluster.workDir, 'project');
  await mkdir(path.join(cwd, '.warden'), { recursive: true });
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  // The cluster stands in for the embedded default (.warden/embedded.json): no config needed.
  await writeFile(
    path.join(cwd, '.warden', 'embedded.json'),
    JSON.stringify({ pid: process.pid, connection }),
    {
      mode: 0o600,
    },
  );
  await withClient(cluster.url(), async (client) => {
    // The embedded default's drills check its ledger.
    await createLedger(client);
    await client.query('CREATE TABLE accounts AS SELECT generate_series(1, 100) AS id');
    await ensureHeartbeatTable(client);
    await writeHeartbeat(client, { ensureTable: false });
  });
  // The native runner (@warden/app/migrate) as a team's start-up script would call it.
  await mkdir(path.join(cwd, 'db'));
  await writeFile(
    path.join(cwd, 'db', '001_drill_added.sql'),
    'CREATE TABLE drill_added (id int PRIMARY KEY);\n',
  );
  await writeFile(path.join(cwd, 'db', '002_fill.sql'), 'INSERT INTO drill_added SELECT id FROM accounts;\n');
  await writeFile(
    path.join(cwd, 'migrate.mjs'),
    [
      `import pg from ${JSON.stringify(import.meta.resolve('pg'))};`,
      `import { migrate } from ${JSON.stringify(APP_MIGRATE)};`,
      'const client = new pg.Client({ connectionString: process.env.DATABASE_URL });',
      'await client.connect();',
      "try { const r = await migrate({ client, dir: 'db' }); console.log(`at version ${r.current}`); }",
      'finally { await client.end(); }',
    ].join('\n'),
  );
  const backup = await warden(['backup', '--no-encryption']);
  assert.equal(backup.code, 0, backup.stderr);
});
after(async () => cluster?.stop());

test('a drill runs the pending native migrations on the restored copy and reports the versions; the source is untouched', async () => {
  const run = await warden([
    'drill',
    '--no-encryption',
    '--rpo',
    '1h',
    '--json',
    '--migrate',
    '--',
    process.execPath,
    '--import',
    import.meta.resolve('tsx'),
    'migrate.mjs',
  ]);
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const report = JSON.parse(run.stdout) as DrillReport;
  const migration = report.migration!;
  assert.equal(migration.status, 'passed', JSON.stringify(migration));
  assert.equal(migration.exitCode, 0);
  assert.deepEqual(migration.applied, [1, 2]);
  assert.match(migration.outputTail ?? '', /at version 2/);
  assert.equal(migration.program, path.basename(process.execPath));
  assert.deepEqual(await sourceTables(), []);

  const audit = await warden(['audit', 'list', '--json']);
  const records = (
    JSON.parse(audit.stdout) as { records: Array<{ action: string; target?: string; outcome: string }> }
  ).records;
  assert.deepEqual(
    records.filter((r) => r.action === 'drill').map((r) => [r.target, r.outcome]),
    [[`migration ${path.basename(process.execPath)}`, 'succeeded']],
  );
});

test('a failing migration fails the drill with its code and output; RTO and RPO are still reported; the source is untouched', async () => {
  const psql = path.join((await findServerBinaries()).bindir, 'psql');
  const run = await warden([
    'drill',
    '--no-encryption',
    '--rpo',
    '1h',
    '--json',
    '--migrate',
    '--',
    psql,
    '-v',
    'ON_ERROR_STOP=1',
    '-c',
    'CREATE TABLE drill_partial (x int)',
    '-c',
    'ALTER TABLE no_such_table ADD COLUMN y int',
  ]);
  assert.equal(run.code, 7, run.stdout + run.stderr);
  const report = JSON.parse(run.stdout) as DrillReport;
  const migration = report.migration!;
  assert.equal(migration.status, 'failed');
  assert.equal(migration.error?.code, 'WARDEN_E_DRILL_MIGRATION_FAILED');
  assert.notEqual(migration.exitCode, 0);
  assert.match(migration.outputTail ?? '', /no_such_table/);
  assert.equal(report.passed, false);
  assert.ok(
    report.failures.some((f) => f.includes('WARDEN_E_DRILL_MIGRATION_FAILED')),
    report.failures.join('; '),
  );
  // The drill's own measurements stand.
  assert.ok(report.measured.rtoMs > 0);
  assert.ok(report.measured.rpoMs !== undefined);
  assert.equal(
    report.verification.checks.every((c) => c.status === 'passed'),
    true,
    JSON.stringify(report.verification.checks),
  );
  // psql connected to the copy (the first statement ran there), never to the source.
  assert.deepEqual(await sourceTables(), []);
});

test("the migration command gets the copy's coordinates, its password only in a PGPASSFILE, nothing inherited that points elsewhere; a slow one is stopped at its timeout", async () => {
  const source = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  const saved = { PGPASSWORD: process.env.PGPASSWORD, DATABASE_URL: process.env.DATABASE_URL };
  process.env.PGPASSWORD = 'inherited-secret';
  process.env.DATABASE_URL = 'postgres://app:inherited-secret@production.example:5432/app';
  try {
    const shown = await runDrillMigration(
      {
        command: ['sh', '-c', 'env | grep -E "^(PG|DATABASE_URL)" | sort; cat "$PGPASSFILE"'],
        timeoutMs: 60_000,
      },
      // The test cluster stands in for the copy (password auth): only the environment is looked at.
      { source, port: source.port },
      { logger: silentLogger },
    );
    assert.equal(shown.status, 'passed', JSON.stringify(shown));
    const output = shown.outputTail ?? '';
    assert.ok(!output.includes('inherited-secret') && !output.includes('production.example'), output);
    assert.ok(!output.includes(cluster.password), 'the password is masked in the output tail');
    assert.match(output, new RegExp(`^PGPORT=${source.port}$`, 'm'));
    assert.match(output, /^PGHOST=127\.0\.0\.1$/m);
    assert.match(
      output,
      new RegExp(`^DATABASE_URL=postgres://${source.user}@127\\.0\\.0\\.1:${source.port}/`, 'm'),
    );
    const passfile = /^PGPASSFILE=(.+)$/m.exec(output)?.[1];
    assert.ok(passfile, output);
    assert.match(output, new RegExp(`:${source.user}:\\*\\*\\*$`, 'm'));
    await assert.rejects(stat(passfile), { code: 'ENOENT' });
  } finally {
    for (const [key, value] of Object.entries(saved))
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
  }

  const slow = await runDrillMigration(
    { command: ['sh', '-c', 'sleep 60 & wait'], timeoutMs: 300 },
    { source, port: source.port },
    { logger: silentLogger },
  );
  assert.equal(slow.status, 'failed');
  assert.equal(slow.error?.code, 'WARDEN_E_DRILL_MIGRATION_TIMEOUT');
  assert.equal(slow.exitCode, null);
  assert.equal(slow.signal, 'SIGTERM');
});

test('drillMigration in the daemon config becomes the drill plan of every cluster', () => {
  const plan = resolveDaemonPlan({
    section: { drillMigration: { command: ['npx', 'node-pg-migrate', 'up'], timeout: '90s' } },
    baseDir: '/srv/app',
    defaultCluster: {
      connection: connectionFromUrl('postgres://app@db1/app'),
      repository: { path: '/srv/repo' },
    },
    retention: DEFAULT_RETENTION_POLICY,
    flags: {},
    env: {},
  });
  assert.deepEqual(plan.clusters[0]!.drillMigration, {
    command: ['npx', 'node-pg-migrate', 'up'],
    timeoutMs: 90_000,
    cwd: '/srv/app',
  });
});
