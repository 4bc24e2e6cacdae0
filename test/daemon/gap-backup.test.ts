import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { repositoryWalEnd } from '../../src/backup/repository-slot.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { Daemon } from '../../src/daemon/daemon.ts';
import { resolveDaemonPlan, type DaemonPlan } from '../../src/daemon/daemon-config.ts';
import { GAP_BACKUP_JOB } from '../../src/daemon/jobs.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { listWalGaps } from '../../src/repository/wal-gap-incidents.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';
import { readJobState } from '../../src/scheduler/job-state.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

// Issue 11: on a recorded WAL gap the daemon takes a new full backup at once, not at the next
// scheduled one (here: no backup is scheduled at all).

let cluster: TestCluster;
let repoPath: string;

before(async () => {
  cluster = await startCluster();
  repoPath = path.join(cluster.workDir, 'repo');
  await cluster.query('CREATE TABLE t (id int, pad text)');
});
after(async () => cluster?.stop());

/** WAL streaming only: every scheduled job is off. */
function plan(repositoryPath = repoPath): DaemonPlan {
  return resolveDaemonPlan({
    section: {
      profile: 'dev',
      http: { port: 0 },
      schedules: {
        'full-backup': null,
        backup: null,
        'logical-dump': null,
        retention: null,
        verification: null,
        drill: null,
      },
    },
    baseDir: cluster.workDir,
    defaultCluster: {
      connection: { ...connectionFromUrl(cluster.url()), tls: 'disable' },
      repository: { path: repositoryPath },
    },
    retention: DEFAULT_RETENTION_POLICY,
    flags: {},
    env: {},
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function currentLsn(): Promise<bigint> {
  const [row] = await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(row!.lsn);
}

/**
 * Polls `check` until it returns a value. The 3-minute limit only turns a daemon that never does
 * (today's code takes no backup without a schedule) into a failure; it is no performance bound.
 */
async function eventually<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  for (const deadline = Date.now() + 180_000; ; await sleep(200)) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`gave up waiting for ${what}`);
  }
}

test('a WAL gap found by the daemon is recorded and a full backup starts at once; status shows why', async () => {
  const store = new FsObjectStore(repoPath);
  const first = new Daemon({ plan: plan(), compression: 'zstd', tickMs: 100, retryBaseMs: 200 });
  await first.start();
  try {
    const target = await currentLsn();
    await eventually('the first stream to archive', async () =>
      (await store.stat('warden-repo.json')) &&
      (await repositoryWalEnd(await Repository.open(store))) >= target
        ? true
        : undefined,
    );
  } finally {
    await first.stop();
  }
  const repository = await Repository.open(store);
  const slot = repository.meta.slot!;
  await cluster.query('SELECT pg_drop_replication_slot($1)', [slot]);
  for (let i = 0; i < 3; i += 1) {
    await cluster.query("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g");
    await cluster.query('SELECT pg_switch_wal()');
  }
  await cluster.query('CHECKPOINT');
  assert.deepEqual(await listBackups(repository), [], 'no backup before the gap');

  const second = new Daemon({ plan: plan(), compression: 'zstd', tickMs: 100, retryBaseMs: 200 });
  await second.start();
  try {
    const gap = await eventually('the gap record', async () => (await listWalGaps(repository)).gaps[0]);
    assert.equal(gap.cause, 'slot-recreated');
    // The receiver goes on streaming (the daemon continues after a gap) ...
    const status = await eventually('the receiver to stream', async () => {
      const s = (await second.status()).clusters[0]!;
      return s.walStream.state === 'streaming' ? s : undefined;
    });
    assert.ok(status.walGaps.some((g) => g.from === gap.from));
    // ... and a full backup that starts after the gap is taken without any schedule.
    const backup = await eventually('a full backup', async () =>
      (await listBackups(repository)).find((b) => b.kind === 'full'),
    );
    assert.ok(parseLsn(backup.startLsn) >= parseLsn(gap.to), `${backup.startLsn} after ${gap.to}`);
    const state = await eventually('the gap-backup job state', async () => {
      const s = await readJobState(store, GAP_BACKUP_JOB);
      return s.lastRun ? s : undefined;
    });
    assert.equal(state.lastRun?.status, 'succeeded', JSON.stringify(state.lastRun));
    assert.match(state.lastRun?.detail ?? '', new RegExp(`full backup ${backup.id} after WAL gap`));
    // Status reads the gap records and the job states separately: wait until it shows both.
    const resolved = await eventually('status to show the gap resolved and the job run', async () => {
      const s = (await second.status()).clusters[0]!;
      const ran = s.jobs.find((j) => j.name === GAP_BACKUP_JOB)?.lastRun !== undefined;
      return s.walGaps[0]?.state === 'resolved' && ran ? s : undefined;
    });
    assert.equal(resolved.walGaps[0]?.resolvedBy, backup.id);
    const job = resolved.jobs.find((j) => j.name === GAP_BACKUP_JOB);
    assert.equal(job?.lastRun?.status, 'succeeded');
    assert.equal(job?.schedule, 'on demand');
  } finally {
    await second.stop();
  }
});

test('a daemon that starts with an unresolved gap recorded by an earlier run takes the full backup at once', async () => {
  const repo = path.join(cluster.workDir, 'repo-earlier');
  const store = new FsObjectStore(repo);
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  // `wal stream --continue-after-gap` as a user runs it: the gap is recorded, the stream goes on.
  const streamUntilArchived = async () => {
    const stop = new AbortController();
    const receiver = new WalReceiver({ connection, store, signal: stop.signal, continueAfterGap: true });
    const running = receiver.run();
    try {
      const target = await currentLsn();
      await eventually('the stream to archive', async () =>
        (await store.stat('warden-repo.json')) &&
        (await repositoryWalEnd(await Repository.open(store))) >= target
          ? true
          : undefined,
      );
    } finally {
      stop.abort();
      await running;
    }
  };
  await streamUntilArchived();
  const repository = await Repository.open(store);
  await cluster.query('SELECT pg_drop_replication_slot($1)', [repository.meta.slot!]);
  await cluster.query("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g");
  await cluster.query('SELECT pg_switch_wal()');
  await cluster.query('CHECKPOINT');
  await streamUntilArchived();
  const [gap] = (await listWalGaps(repository)).gaps;
  assert.equal(gap?.cause, 'slot-recreated');

  // The daemon's receiver resumes where that stream stopped (no new gap): only the recorded one.
  const daemon = new Daemon({ plan: plan(repo), compression: 'zstd', tickMs: 100, retryBaseMs: 200 });
  await daemon.start();
  try {
    const backup = await eventually('a full backup', async () =>
      (await listBackups(repository)).find((b) => b.kind === 'full'),
    );
    assert.ok(parseLsn(backup.startLsn) >= parseLsn(gap.to));
    const state = await eventually('the gap-backup job state', async () => {
      const s = await readJobState(store, GAP_BACKUP_JOB);
      return s.lastRun ? s : undefined;
    });
    assert.equal(state.lastRun?.status, 'succeeded', JSON.stringify(state.lastRun));
  } finally {
    await daemon.stop();
  }
  assert.equal((await listWalGaps(repository)).gaps.length, 1, 'no new gap when the daemon resumed');
});
