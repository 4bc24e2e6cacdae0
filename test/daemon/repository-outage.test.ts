import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Daemon, type DaemonStatus } from '../../src/daemon/daemon.ts';
import { resolveDaemonPlan } from '../../src/daemon/daemon-config.ts';
import { connectionFromUrl, type ConnectionConfig } from '../../src/postgres/connection-config.ts';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { Repository } from '../../src/repository/repository.ts';
import type { S3ObjectStore } from '../../src/repository/s3/s3-object-store.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';
import { verifyRepository } from '../../src/verify/repository-verify.ts';
import { verifyRestore } from '../../src/verify/restore-check.ts';
import { runWarden } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { startFaultProxy, startS3, type FaultProxy, type TestS3 } from '../harness/s3.ts';

/**
 * The repository (an S3 bucket behind the fault proxy) goes away while `warden serve` runs:
 * every request is reset. Jobs retry with backoff and status says so; once the bucket is back
 * the backup succeeds and the WAL written during the outage reaches the repository without a gap.
 */

let cluster: TestCluster;
let s3: TestS3;
let proxy: FaultProxy;
let direct: S3ObjectStore;
let viaProxy: S3ObjectStore;
let connection: ConnectionConfig;

before(async () => {
  [cluster, s3] = await Promise.all([startCluster(), startS3()]);
  proxy = await startFaultProxy(s3);
  direct = await s3.newStore();
  connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' };
});
after(async () => {
  await proxy?.stop();
  await Promise.all([cluster?.stop(), s3?.stop()]);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  // On stderr as it happens: a test that outlasts its own timeout shows which step it was in.
  console.error(`repository-outage: waiting for ${what} (${new Date().toISOString()})`);
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

test(
  'an unreachable repository: the backup retries with backoff, status shows it, and once back nothing is lost',
  { timeout: 420_000 },
  async () => {
    const location = direct.location.replace(/^s3:\/\//, '');
    const [bucket, ...rest] = location.split('/');
    const prefix = rest.join('/');
    viaProxy = await s3.newStore({
      bucket: bucket!,
      prefix,
      endpoint: proxy.endpoint,
      // Fail fast inside one job attempt; the scheduler's backoff is what is under test.
      retry: { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 200 },
    });
    const plan = resolveDaemonPlan({
      section: {
        profile: 'dev',
        http: { port: 0 },
        schedules: {
          'full-backup': null,
          backup: '*/20 * * * * *',
          'logical-dump': null,
          retention: null,
          verification: null,
          drill: null,
        },
      },
      baseDir: cluster.workDir,
      defaultCluster: { connection, repository: { path: viaProxy.location }, slot: 'warden' },
      retention: DEFAULT_RETENTION_POLICY,
      flags: {},
      env: {},
    });
    const daemon = new Daemon({
      plan,
      compression: 'zstd',
      tickMs: 100,
      retryBaseMs: 500,
      daemonId: 'outage',
      openStore: () => viaProxy,
    });
    const status = async (): Promise<DaemonStatus['clusters'][number]> => {
      const response = await fetch(`http://127.0.0.1:${daemon.address!.port}/api/status`);
      return ((await response.json()) as DaemonStatus).clusters[0]!;
    };
    await daemon.start();
    let outageWrites: Date;
    let firstBackup: string;
    try {
      firstBackup = await waitFor('the first backup', 120_000, async () => {
        const job = (await status()).jobs.find((j) => j.name === 'backup');
        return job?.lastRun?.status === 'succeeded' ? job.lastRun.detail : undefined;
      });
      await waitFor('the WAL stream', 60_000, async () =>
        (await status()).walStream.state === 'streaming' ? true : undefined,
      );

      proxy.setFaults([{ fault: { kind: 'reset' }, times: Number.POSITIVE_INFINITY }]);
      await cluster.query('CREATE TABLE during_outage AS SELECT generate_series(1, 5000) AS id');
      await cluster.query('SELECT pg_switch_wal()');
      await cluster.query('INSERT INTO during_outage SELECT generate_series(5001, 10000)');
      await cluster.query('SELECT pg_switch_wal()');
      outageWrites = (await cluster.query<{ now: Date }>('SELECT clock_timestamp() AS now'))[0]!.now;

      const during = await waitFor('the backup job to be retrying', 120_000, async () => {
        const s = await status();
        const job = s.jobs.find((j) => j.name === 'backup');
        return job?.retry && !s.repository.reachable && s.walStream.lastError ? s : undefined;
      });
      assert.equal(during.repository.error?.code, 'WARDEN_E_REPO_IO');
      assert.ok(
        during.alerts.some((a) => a.includes('unreachable')),
        during.alerts.join('\n'),
      );
      const retry = during.jobs.find((j) => j.name === 'backup')!.retry!;
      assert.equal(retry.error.code, 'WARDEN_E_REPO_IO');
      assert.ok(retry.attempt >= 1);
      assert.equal(during.walStream.lastError?.code, 'WARDEN_E_REPO_IO');
      // The second attempt comes after a backoff, not at once.
      await waitFor('a second attempt', 60_000, async () => {
        const job = (await status()).jobs.find((j) => j.name === 'backup');
        return (job?.retry?.attempt ?? 0) >= 2 ? true : undefined;
      });

      const cli = await runWarden(
        ['status', '--db', `${cluster.url()}?sslmode=disable`, '--repo', viaProxy.location, '--json'],
        {
          cwd: cluster.workDir,
          env: {
            AWS_ENDPOINT_URL: proxy.endpoint,
            AWS_REGION: s3.region,
            AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
            AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
          },
        },
      );
      const offline = (
        JSON.parse(cli.stdout) as {
          clusters: Array<{ repository: { reachable: boolean; error?: { code: string } }; alerts: string[] }>;
        }
      ).clusters[0]!;
      assert.equal(offline.repository.reachable, false, cli.stdout + cli.stderr);
      assert.equal(offline.repository.error?.code, 'WARDEN_E_REPO_IO');

      proxy.setFaults([]);
      await waitFor('a backup after the outage', 180_000, async () => {
        const s = await status();
        const job = s.jobs.find((j) => j.name === 'backup');
        return job?.lastRun?.status === 'succeeded' && job.lastRun.detail !== firstBackup && !job.retry
          ? true
          : undefined;
      });
      await waitFor('the WAL of the outage in the repository', 120_000, async () => {
        const latest = (await status()).restorableWindow?.latest;
        return latest && Date.parse(latest) > outageWrites.getTime() ? true : undefined;
      });
      // The receiver that failed during the outage resumes (it may be between sessions right now).
      await waitFor('the WAL stream to stream again', 60_000, async () =>
        (await status()).walStream.state === 'streaming' ? true : undefined,
      );
      const after = await status();
      assert.equal(after.repository.reachable, true);
      assert.deepEqual(after.restorableWindow?.gaps ?? [], []);
    } finally {
      await daemon.stop();
    }

    const backups = await listBackups(await Repository.open(direct));
    // The one before the outage and at least one after (a later 20 s slot may run on a slow machine).
    assert.ok(backups.length >= 2, backups.map((b) => b.id).join(', '));
    const verify = await verifyRepository({ store: direct });
    assert.ok(verify.ok, JSON.stringify(verify.problems, null, 2));
    // Restore the backup from before the outage and replay the WAL across it.
    const report = await verifyRestore({
      store: direct,
      connection,
      target: { kind: 'time', time: outageWrites },
      checks: [
        { name: 'rows written during the outage', sql: 'SELECT count(*) FROM during_outage', equals: 10_000 },
      ],
      scratch: { scratchDir: cluster.workDir },
    });
    assert.ok(report.passed, JSON.stringify(report.checks, null, 2));
    assert.equal(report.backupId, backups[0]!.id);
  },
);
