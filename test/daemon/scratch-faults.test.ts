import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { Daemon, type DaemonStatus } from '../../src/daemon/daemon.ts';
import { resolveDaemonPlan } from '../../src/daemon/daemon-config.ts';
import type { JobName } from '../../src/daemon/profiles.ts';
import { connectionFromUrl, type ConnectionConfig } from '../../src/postgres/connection-config.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';
import { readJobState, type JobRun } from '../../src/scheduler/job-state.ts';
import { listDrills } from '../../src/verify/drill.ts';
import { listVerifications, verifyRestore } from '../../src/verify/restore-check.ts';
import { freePort } from '../../src/util/free-port.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

/**
 * A verification or drill that cannot prepare its scratch instance (configured port taken, not
 * enough disk) fails before restoring anything, with a stable code that status shows, and leaves
 * nothing behind. Each runs as the daemon's scheduled job (its catch-up slot at start).
 */

let cluster: TestCluster;
let connection: ConnectionConfig;

before(async () => {
  cluster = await startCluster();
  connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' };
  await cluster.query('CREATE TABLE t AS SELECT generate_series(1, 10000) AS id');
});
after(async () => cluster?.stop());

async function newRepository(name: string): Promise<FsObjectStore> {
  const store = new FsObjectStore(path.join(cluster.workDir, name));
  await takeBackup({ connection, store, slotName: `slot_${name.replace(/-/g, '_')}`, compression: 'zstd' });
  return store;
}

/** Runs one job of a daemon once (its catch-up slot) and returns the run and the daemon's status. */
async function runJobOnce(
  store: FsObjectStore,
  job: JobName,
  verification: { scratchDir: string; port?: number },
): Promise<{ run: JobRun; status: DaemonStatus['clusters'][number]; health: number }> {
  const schedules = Object.fromEntries(
    (['full-backup', 'backup', 'logical-dump', 'retention', 'verification', 'drill'] as const).map((name) => [
      name,
      name === job ? '0 0 1 1 *' : null,
    ]),
  );
  const plan = resolveDaemonPlan({
    section: {
      profile: 'dev',
      http: { port: 0 },
      schedules,
      walStreaming: false,
      heartbeat: false,
      verification,
    },
    baseDir: cluster.workDir,
    defaultCluster: { connection, repository: { path: store.root }, slot: 'warden' },
    retention: DEFAULT_RETENTION_POLICY,
    flags: {},
    env: {},
  });
  const daemon = new Daemon({ plan, compression: 'zstd', tickMs: 100, openStore: () => store });
  await daemon.start();
  try {
    const deadline = Date.now() + 120_000;
    let run: JobRun | undefined;
    while (!(run = (await readJobState(store, job)).lastRun)) {
      if (Date.now() > deadline) assert.fail(`the ${job} job did not run within 120 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const base = `http://127.0.0.1:${daemon.address!.port}`;
    const status = ((await (await fetch(`${base}/api/status`)).json()) as DaemonStatus).clusters[0]!;
    const health = (await fetch(`${base}/api/health`)).status;
    return { run, status, health };
  } finally {
    await daemon.stop();
  }
}

test(
  'a drill whose configured scratch port is taken fails fast with WARDEN_E_PORT_IN_USE; freed, the port is used as configured',
  { timeout: 300_000 },
  async () => {
    const store = await newRepository('repo-port');
    const scratchDir = path.join(cluster.workDir, 'scratch-port');
    await mkdir(scratchDir);
    const port = await freePort();
    const occupant = net.createServer();
    await new Promise<void>((resolve) => occupant.listen(port, '127.0.0.1', resolve));
    let result: Awaited<ReturnType<typeof runJobOnce>>;
    try {
      result = await runJobOnce(store, 'drill', { scratchDir, port });
    } finally {
      await new Promise<void>((resolve) => occupant.close(() => resolve()));
    }
    assert.equal(result.run.status, 'failed');
    assert.equal(result.run.error?.code, 'WARDEN_E_DRILL_FAILED');
    const drill = (await listDrills(store)).at(-1)!;
    assert.equal(drill.passed, false);
    assert.deepEqual(
      drill.verification.checks.map((c) => [c.name, c.status, c.error?.code]),
      [['prepare', 'failed', 'WARDEN_E_PORT_IN_USE']],
      'nothing was restored',
    );
    assert.deepEqual(
      result.status.lastDrill?.errors.map((e) => [e.check, e.code]),
      [['prepare', 'WARDEN_E_PORT_IN_USE']],
    );
    assert.equal(result.health, 503);
    assert.deepEqual(await readdir(scratchDir), [], 'no scratch directory left behind');

    const report = await verifyRestore({
      store,
      connection,
      target: { kind: 'latest' },
      scratch: { scratchDir, port },
    });
    assert.ok(report.passed, JSON.stringify(report.checks, null, 2));
    assert.equal(report.port, port, 'the configured port, not a replacement');
    assert.deepEqual(await readdir(scratchDir), []);
  },
);

test(
  'a verification without enough free scratch space fails before restoring, is recorded and shown in status, and leaves nothing behind',
  { timeout: 300_000 },
  async () => {
    const store = await newRepository('repo-space');
    // Fault injection: the backup now claims ~1 PiB of raw data, more than any scratch disk has.
    const [id] = await readdir(path.join(store.root, 'backups'));
    const recordFile = path.join(store.root, 'backups', id!, 'backup.json');
    const record = JSON.parse(await readFile(recordFile, 'utf8')) as { archives: Array<{ rawSize: number }> };
    record.archives[0]!.rawSize = 2 ** 50;
    await writeFile(recordFile, JSON.stringify(record, null, 2));
    const scratchDir = path.join(cluster.workDir, 'scratch-space');
    await mkdir(scratchDir);

    const { run, status, health } = await runJobOnce(store, 'verification', { scratchDir });
    assert.equal(run.status, 'failed');
    assert.equal(run.error?.code, 'WARDEN_E_RESTORE_CHECK_FAILED');
    const verification = (await listVerifications(store)).at(-1)!;
    assert.equal(verification.backupId, id);
    assert.deepEqual(
      verification.checks.map((c) => [c.name, c.status, c.error?.code]),
      [['prepare', 'failed', 'WARDEN_E_INSUFFICIENT_SPACE']],
      'checked before restoring anything',
    );
    assert.equal(status.lastVerification?.passed, false);
    assert.deepEqual(
      status.lastVerification?.errors.map((e) => [e.check, e.code]),
      [['prepare', 'WARDEN_E_INSUFFICIENT_SPACE']],
    );
    assert.ok(
      status.alerts.some((a) => a.includes('WARDEN_E_INSUFFICIENT_SPACE')),
      status.alerts.join('\n'),
    );
    assert.equal(health, 503);
    assert.deepEqual(await readdir(scratchDir), [], 'no scratch directory left behind');
  },
);
