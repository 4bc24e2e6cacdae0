import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ensureHeartbeatTable, writeHeartbeat } from '../../src/postgres/heartbeat.ts';
import { createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import type { DrillReport } from '../../src/verify/drill.ts';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;
let cwd: string;

const warden = (args: string[]): Promise<CliRun> => runWarden(args, { cwd });

// The drills below run against a cluster recorded as the running embedded default
// (.warden/embedded.json), the case `npx warden drill` meets after `npx warden`.
before(async () => {
  cluster = await startCluster();
  cwd = path.join(cluster.workDir, 'project');
  await mkdir(path.join(cwd, '.warden'), { recursive: true });
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  await writeFile(
    path.join(cwd, '.warden', 'embedded.json'),
    JSON.stringify({ pid: process.pid, connection }),
    { mode: 0o600 },
  );
  await withClient(cluster.url(), async (client) => {
    await createLedger(client);
    for (let i = 0; i < 10; i += 1) await randomTransfer(client);
    await ensureHeartbeatTable(client);
    await writeHeartbeat(client, { ensureTable: false });
  });
  const backup = await warden(['backup', '--no-encryption']);
  assert.equal(backup.code, 0, backup.stderr);
});
after(async () => cluster?.stop());

test('a drill by hand on the embedded default runs the ledger checks scheduled drills run', async () => {
  const run = await warden(['drill', '--no-encryption', '--rpo', '1h', '--json']);
  assert.ok(run.code === 0 || run.code === 7, run.stderr);
  const report = JSON.parse(run.stdout) as DrillReport;
  const names = report.verification.checks.map((c) => c.name);
  assert.ok(names.includes('sql: ledger balances to zero'), names.join(', '));
  assert.ok(names.includes('sql: ledger has its accounts'), names.join(', '));
  assert.equal(
    report.verification.checks.find((c) => c.name === 'sql: ledger balances to zero')?.status,
    'passed',
  );
});

test('the drill restores what was durable at the loss: writes after the last durable WAL make RPO non-zero', async () => {
  // No stream runs: the repository holds WAL up to the end of the backup. Everything committed
  // since (these transfers, the drill's own heartbeat at the loss) is what a loss now costs.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  await withClient(cluster.url(), async (client) => {
    for (let i = 0; i < 5; i += 1) await randomTransfer(client);
  });
  const run = await warden(['drill', '--no-encryption', '--rpo', '1s', '--json']);
  assert.equal(run.code, 7, run.stderr);
  const report = JSON.parse(run.stdout) as DrillReport;
  assert.ok(report.loss?.durableLsn, JSON.stringify(report.loss));
  assert.deepEqual(report.verification.target, { kind: 'lsn', lsn: report.loss.durableLsn, before: true });
  assert.ok(report.sourceNewest && report.restoredNewest);
  assert.ok(
    report.measured.rpoMs !== undefined && report.measured.rpoMs >= 2000,
    `RPO ${report.measured.rpoMs}`,
  );
  assert.equal(report.measured.rpoMs, Date.parse(report.sourceNewest) - Date.parse(report.restoredNewest));
  assert.ok(
    report.failures.some((f) => f.startsWith('RPO')),
    report.failures.join('; '),
  );
});
