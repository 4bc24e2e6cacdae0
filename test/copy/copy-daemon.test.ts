import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { Daemon, type DaemonStatus } from '../../src/daemon/daemon.ts';
import { resolveDaemonPlan } from '../../src/daemon/daemon-config.ts';
import type { WardenEventMap } from '../../src/events/warden-events.ts';
import { connectionFromUrl, type ConnectionConfig } from '../../src/postgres/connection-config.ts';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import type { S3ObjectStore } from '../../src/repository/s3/s3-object-store.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';
import { verifyAuditLog } from '../../src/audit/audit-verify.ts';
import { verifyRepository } from '../../src/verify/repository-verify.ts';
import { verifyRestore } from '../../src/verify/restore-check.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { startFaultProxy, startS3, type FaultProxy, type TestS3 } from '../harness/s3.ts';
import { tempDir } from '../harness/temp-dir.ts';

/**
 * `warden serve` with `copyTo` a second directory and an S3 bucket (behind the fault proxy)
 * while backups and the WAL stream run: the bucket goes away (every request reset) during WAL
 * traffic and comes back; the copy catches up with no gap, verifies on its own and restores exactly.
 */

let cluster: TestCluster;
let s3: TestS3;
let proxy: FaultProxy;
let connection: ConnectionConfig;
const dirs: string[] = [];
const stores: S3ObjectStore[] = [];

before(async () => {
  [cluster, s3] = await Promise.all([startCluster(), startS3()]);
  proxy = await startFaultProxy(s3);
  connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' };
});
after(async () => {
  for (const store of stores) store.destroy();
  await proxy?.stop();
  await Promise.all([cluster?.stop(), s3?.stop()]);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

test(
  'copyTo follows backups and WAL to a directory and a bucket, through an outage of the bucket, with no gap',
  { timeout: 300_000 },
  async () => {
    const primaryDir = await tempDir('copy-primary');
    const secondDir = await tempDir('copy-second');
    dirs.push(primaryDir, secondDir);
    const direct = await s3.newStore();
    stores.push(direct);
    const [bucket, ...rest] = direct.location.replace(/^s3:\/\//, '').split('/');
    const viaProxy = await s3.newStore({
      bucket: bucket!,
      prefix: rest.join('/'),
      endpoint: proxy.endpoint,
      retry: { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 200 },
    });
    stores.push(viaProxy);
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
        copyTo: [
          { name: 'second', repository: secondDir, interval: '1s' },
          { name: 'offsite', repository: direct.location, interval: '1s' },
        ],
      },
      baseDir: cluster.workDir,
      defaultCluster: { connection, repository: { path: primaryDir }, slot: 'warden' },
      retention: DEFAULT_RETENTION_POLICY,
      flags: {},
      env: { AWS_ENDPOINT_URL: s3.endpoint },
    });
    const events: Array<{
      name: string;
      payload: WardenEventMap['copy.failed'] | WardenEventMap['copy.caught-up'];
    }> = [];
    const daemon = new Daemon({
      plan,
      compression: 'zstd',
      tickMs: 100,
      retryBaseMs: 200,
      daemonId: 'copy',
      // The bucket is reached through the fault proxy (its credentials are the test server's).
      openStore: (location) => (location.s3 ? viaProxy : new FsObjectStore(location.path)),
    });
    daemon.events.on('copy.failed', (payload) => events.push({ name: 'copy.failed', payload }));
    daemon.events.on('copy.caught-up', (payload) => events.push({ name: 'copy.caught-up', payload }));
    const status = async (): Promise<DaemonStatus['clusters'][number]> => {
      const response = await fetch(`http://127.0.0.1:${daemon.address!.port}/api/status`);
      return ((await response.json()) as DaemonStatus).clusters[0]!;
    };
    const copy = async (name: string) => (await status()).copies!.find((c) => c.target === name)!;
    await daemon.start();
    let outageWrites: Date;
    try {
      await waitFor('a backup copied to both targets', 120_000, async () => {
        const s = await status();
        return s.copies?.every((c) => c.copied.backups >= 1) ? true : undefined;
      });
      await waitFor('the WAL stream', 60_000, async () =>
        (await status()).walStream.state === 'streaming' ? true : undefined,
      );

      proxy.setFaults([{ fault: { kind: 'reset' }, times: Number.POSITIVE_INFINITY }]);
      await cluster.query('CREATE TABLE during_outage AS SELECT generate_series(1, 5000) AS id');
      await cluster.query('SELECT pg_switch_wal()');
      await cluster.query('INSERT INTO during_outage SELECT generate_series(5001, 10000)');
      outageWrites = (await cluster.query<{ now: Date }>('SELECT clock_timestamp() AS now'))[0]!.now;
      // A commit after the target time, in a completed segment: the copy holds completed segments
      // only (never the partial one), so its window must reach past the target through this.
      await cluster.query('CREATE TABLE after_the_target ()');
      await cluster.query('SELECT pg_switch_wal()');

      const failing = await waitFor('the bucket copy to fail', 60_000, async () => {
        const c = await copy('offsite');
        return c.state === 'failing' && c.failedAttempts >= 2 ? c : undefined;
      });
      assert.equal(failing.lastError?.code, 'WARDEN_E_REPO_IO');
      assert.ok(failing.nextAttemptAt, 'the next attempt is scheduled (backoff)');
      assert.deepEqual(
        events.filter((e) => e.name === 'copy.failed').map((e) => e.payload.target),
        ['offsite'],
        'one event per outage, not one per attempt',
      );
      const metrics = await (await fetch(`http://127.0.0.1:${daemon.address!.port}/metrics`)).text();
      const lag = /^warden_copy_lag_seconds\{[^}]*target="offsite"[^}]*\} (\S+)$/m.exec(metrics);
      assert.ok(lag, metrics);
      assert.match(metrics, /^warden_copy_failed_attempts\{[^}]*target="offsite"[^}]*\} [1-9]/m);

      // The WAL of the outage is durable in the primary repository; the directory copy follows it.
      await waitFor('the WAL of the outage in the primary repository', 120_000, async () => {
        const latest = (await status()).restorableWindow?.latest;
        return latest && Date.parse(latest) > outageWrites.getTime() ? true : undefined;
      });
      const archivedBy = Date.now();
      await waitFor('the directory copy past the outage', 60_000, async () => {
        const c = await copy('second');
        return c.caughtUpAt && Date.parse(c.caughtUpAt) > archivedBy ? true : undefined;
      });
      assert.equal((await copy('offsite')).state, 'failing');

      proxy.setFaults([]);
      const caughtUp = await waitFor('the bucket copy to catch up', 120_000, async () => {
        const c = await copy('offsite');
        return c.caughtUpAt && Date.parse(c.caughtUpAt) > archivedBy ? c : undefined;
      });
      assert.equal(caughtUp.state, 'caught-up');
      assert.equal(caughtUp.failedAttempts, 0);
      assert.ok(events.some((e) => e.name === 'copy.caught-up' && e.payload.target === 'offsite'));
      const after = await (await fetch(`http://127.0.0.1:${daemon.address!.port}/metrics`)).text();
      assert.match(after, /^warden_copy_last_success_timestamp_seconds\{[^}]*target="offsite"[^}]*\} \d/m);
    } finally {
      await daemon.stop();
    }

    const primaryBackups = (await listBackups(await Repository.open(new FsObjectStore(primaryDir)))).map(
      (b) => b.id,
    );
    const primaryAudit = await verifyAuditLog(await Repository.open(new FsObjectStore(primaryDir)));
    for (const copyStore of [direct, new FsObjectStore(secondDir)]) {
      const copied = (await listBackups(await Repository.open(copyStore))).map((b) => b.id);
      assert.ok(copied.length >= 1 && copied.every((id) => primaryBackups.includes(id)), copied.join(', '));
      const verify = await verifyRepository({ store: copyStore });
      assert.ok(verify.ok, JSON.stringify(verify.problems, null, 2));
      // The daemon's audit log (each backup is recorded) is in the copy, with the primary's verdict
      // (this daemon's heads are unsigned; a copy without its head or a record would differ).
      const audit = await verifyAuditLog(await Repository.open(copyStore));
      assert.ok(audit.records >= 1, JSON.stringify(audit, null, 2));
      assert.deepEqual(
        audit.problems.map((p) => p.problem),
        primaryAudit.problems.map((p) => p.problem),
      );
    }
    // Restore from the bucket copy alone, across the outage.
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
  },
);
