import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { resolveDaemonPlan } from '../../src/daemon/daemon-config.ts';
import { HeartbeatWriter } from '../../src/postgres/heartbeat.ts';
import { collectClusterStatus } from '../../src/daemon/status.ts';
import { createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { connectionFromUrl, type ConnectionConfig } from '../../src/postgres/connection-config.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';
import { listDrills, recordDrill, runDrill } from '../../src/verify/drill.ts';
import { recordVerification, verifyRestore, type SqlCheck } from '../../src/verify/restore-check.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;
let store: FsObjectStore;
let connection: ConnectionConfig;
let backupId: string;
const abort = new AbortController();
let receiverDone: Promise<void>;
let heartbeat: HeartbeatWriter;

const CHECKS: SqlCheck[] = [
  { name: 'ledger balances to zero', sql: 'SELECT sum(balance) FROM ledger_accounts', equals: 0 },
  { name: 'transfers within bounds', sql: 'SELECT count(*) FROM ledger_transfers', min: 10, max: 100_000 },
];

before(async () => {
  cluster = await startCluster();
  store = new FsObjectStore(path.join(cluster.workDir, 'repo'));
  connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' };
  await withClient(cluster.url(), async (client) => {
    await createLedger(client);
    for (let i = 0; i < 20; i += 1) await randomTransfer(client);
  });
  const receiver = new WalReceiver({ connection, store, slotName: 'warden', signal: abort.signal });
  receiverDone = receiver.run().catch((error) => {
    if (!abort.signal.aborted) throw error;
  });
  heartbeat = new HeartbeatWriter(connection, { intervalMs: 200 });
  heartbeat.start();
  backupId = (await takeBackup({ connection, store, slotName: 'warden', compression: 'zstd' })).backup.id;
  await new Promise((resolve) => setTimeout(resolve, 1500));
});

after(async () => {
  await heartbeat?.stop();
  abort.abort();
  await receiverDone;
  await cluster?.stop();
});

test('verification restores into a scratch instance and passes manifest, recovery, amcheck and SQL checks', async () => {
  const report = await verifyRestore({
    store,
    connection,
    target: { kind: 'latest' },
    checks: CHECKS,
    scratch: { scratchDir: cluster.workDir },
  });
  assert.ok(report.passed, JSON.stringify(report.checks, null, 2));
  assert.equal(report.backupId, backupId);
  assert.ok(report.port, 'a free port was picked');
  assert.deepEqual(
    report.checks.map((c) => [c.name, c.status]),
    [
      ['restore', 'passed'],
      ['manifest', 'passed'],
      ['recovery reached target', 'passed'],
      ['amcheck', 'passed'],
      ['sql: ledger balances to zero', 'passed'],
      ['sql: transfers within bounds', 'passed'],
    ],
  );
  assert.ok(report.restoredHeartbeat);
  const failing = await verifyRestore({
    store,
    connection,
    target: { kind: 'latest' },
    checks: [{ name: 'impossible count', sql: 'SELECT count(*) FROM ledger_accounts', max: 0 }],
  });
  assert.equal(failing.passed, false);
  assert.equal(
    failing.checks.find((c) => c.name === 'sql: impossible count')?.error?.code,
    'WARDEN_E_RESTORE_CHECK_FAILED',
  );
});

test('a drill measures RTO and RPO, passes generous objectives and fails an impossible RTO', async () => {
  const good = await runDrill({
    store,
    connection,
    objectives: { rtoMs: 3_600_000, rpoMs: 3_600_000 },
    checks: CHECKS,
  });
  assert.ok(good.passed, good.failures.join('; '));
  assert.ok(good.measured.rtoMs > 0);
  assert.ok(good.measured.rpoMs !== undefined && good.measured.rpoMs < 60_000, `RPO ${good.measured.rpoMs}`);
  assert.ok(good.sourceNewest && good.restoredNewest);
  const key = await recordDrill(store, good);
  assert.match(
    await readFile(path.join(store.root, key.replace(/\.json$/, '.txt')), 'utf8'),
    /DR drill PASSED/,
  );

  const bad = await runDrill({ store, connection, objectives: { rtoMs: 1, rpoMs: 3_600_000 } });
  assert.equal(bad.passed, false);
  assert.ok(
    bad.failures.some((f) => f.startsWith('RTO')),
    bad.failures.join('; '),
  );
  await recordDrill(store, bad);
  assert.equal((await listDrills(store)).at(-1)?.passed, false);
});

test('warden drill --rto 1ms exits 7 with the report; warden status shows the failed drill', async () => {
  const bin = path.resolve('bin/warden.js');
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string }>((resolve) =>
      execFile('node', [bin, ...args], { cwd: cluster.workDir }, (error, stdout) =>
        resolve({ code: error ? Number((error as { code?: number }).code) : 0, stdout }),
      ),
    );
  const db = `${cluster.url()}?sslmode=disable`;
  const drill = await run([
    'drill',
    '--db',
    db,
    '--repo',
    store.root,
    '--rto',
    '1ms',
    '--rpo',
    '1h',
    '--json',
  ]);
  assert.equal(drill.code, 7, drill.stdout);
  const report = JSON.parse(drill.stdout) as { passed: boolean; measured: { rtoMs: number; rpoMs?: number } };
  assert.equal(report.passed, false);
  assert.ok(report.measured.rtoMs > 1);
  const status = await run(['status', '--db', db, '--repo', store.root, '--json']);
  assert.equal(status.code, 7);
  const parsed = JSON.parse(status.stdout) as {
    clusters: Array<{ lastDrill: { passed: boolean }; alerts: string[]; rpoExposureSeconds?: number }>;
  };
  assert.equal(parsed.clusters[0]!.lastDrill.passed, false);
  assert.ok(parsed.clusters[0]!.alerts.some((a) => a.includes('drill')));
  assert.ok(parsed.clusters[0]!.rpoExposureSeconds !== undefined);
});

test('verification catches a corrupted backup, records it, and status shows it', async () => {
  const archive = path.join(store.root, 'backups', backupId, 'base.tar.zst');
  const bytes = await readFile(archive);
  bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
  await writeFile(archive, bytes);
  const report = await verifyRestore({ store, connection, target: { kind: 'latest' }, checks: CHECKS });
  assert.equal(report.passed, false);
  const restoreCheck = report.checks.find((c) => c.name === 'restore')!;
  assert.equal(restoreCheck.status, 'failed');
  assert.equal(restoreCheck.error?.code, 'WARDEN_E_REPO_CORRUPT');
  const key = await recordVerification(store, report);
  assert.ok(key.startsWith(`verifications/${backupId}/`));
  const plan = resolveDaemonPlan({
    baseDir: cluster.workDir,
    defaultCluster: { connection, repository: { path: store.root }, slot: 'warden' },
    retention: DEFAULT_RETENTION_POLICY,
    flags: { profile: 'prod' },
    env: {},
  }).clusters[0]!;
  const status = await collectClusterStatus({ plan, store, connection });
  assert.equal(status.lastVerification?.passed, false);
  assert.deepEqual(status.lastVerification?.failed, ['restore']);
  assert.ok(status.alerts.some((a) => a.includes('verification')));
});
