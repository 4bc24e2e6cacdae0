import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Daemon, type DaemonStatus } from '../../src/daemon/daemon.ts';
import type { DaemonPlan } from '../../src/daemon/daemon-config.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readJobState } from '../../src/scheduler/job-state.ts';
import { backupOnlyPlan } from '../harness/daemon-plan.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;
let repoPath: string;
const PERIOD_MS = 3000;

before(async () => {
  cluster = await startCluster();
  repoPath = path.join(cluster.workDir, 'repo');
  await cluster.query('CREATE TABLE t AS SELECT generate_series(1, 1000) AS id');
});
after(async () => cluster?.stop());

/** Only the backup job, every 3 seconds (croner's seconds field): days become seconds. */
function plan(): DaemonPlan {
  return backupOnlyPlan({
    connection: { ...connectionFromUrl(cluster.url()), tls: 'disable' },
    repositoryPath: repoPath,
    baseDir: cluster.workDir,
    schedule: '*/3 * * * * *',
  });
}

function daemon(id: string): Daemon {
  return new Daemon({ plan: plan(), compression: 'zstd', tickMs: 100, retryBaseMs: 200, daemonId: id });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('two daemons: each backup slot runs once, on time, on one of them; one streams WAL, the other stands by', async () => {
  const a = daemon('a');
  const b = daemon('b');
  await Promise.all([a.start(), b.start()]);
  let statusA: DaemonStatus | undefined;
  let httpStatus: DaemonStatus | undefined;
  try {
    await sleep(10_000);
    // One streams, the other stands by; a receiver between retries (5 s after a transient
    // error on a loaded machine) shows `idle` for a moment, so look again for up to 20 s.
    let states: string[] = [];
    let problems = '';
    for (const deadline = Date.now() + 20_000; ; await sleep(500)) {
      statusA = await a.status();
      const statusB = await b.status();
      states = [statusA, statusB].map((s) => s.clusters[0]!.walStream.state).sort();
      problems = JSON.stringify([statusA, statusB].map((s) => s.clusters[0]!.walStream));
      if (states.join() === 'standby,streaming' || Date.now() > deadline) break;
    }
    assert.deepEqual(states, ['standby', 'streaming'], problems);
    // At least three slots recorded (run or skipped as covered): on a loaded machine a backup can
    // outlast its 3-second period, so wait for them rather than for a fixed time.
    for (const deadline = Date.now() + 120_000; ; await sleep(500)) {
      const recorded = (await readJobState(new FsObjectStore(repoPath), 'backup')).history.length;
      if (recorded >= 3 || Date.now() > deadline) break;
    }
    // The window needs a backup and the WAL after it archived; a receiver that just restarted
    // restreams its partial segment, so the window may be missing for a moment: look again.
    for (const deadline = Date.now() + 20_000; ; await sleep(500)) {
      const response = await fetch(`http://127.0.0.1:${a.address!.port}/api/status`);
      assert.equal(response.status, 200);
      httpStatus = (await response.json()) as DaemonStatus;
      if (httpStatus.clusters[0]?.restorableWindow?.earliest || Date.now() > deadline) break;
    }
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
  const store = new FsObjectStore(repoPath);
  const state = await readJobState(store, 'backup');
  const runs = [...state.history].reverse();
  assert.ok(runs.length >= 3, `at least 3 slots recorded, got ${runs.length}`);
  const slots = runs.map((run) => run.slot);
  assert.equal(new Set(slots).size, slots.length, `each slot once: ${slots.join(', ')}`);
  const backups = await listBackups(await Repository.open(store));
  // A slot whose backup a slow run had already started (at or after the slot) is skipped, naming it.
  const taken = runs.filter((run) => run.status !== 'skipped');
  for (const run of runs.filter((r) => r.status === 'skipped')) {
    const id = /^backup (\S+) already covers this slot$/.exec(run.detail ?? '')?.[1];
    const cover = backups.find((b) => b.id === id);
    assert.ok(cover && Date.parse(cover.startTime) >= Date.parse(run.slot), JSON.stringify(run));
  }
  for (const run of taken) {
    assert.equal(run.status, 'succeeded', JSON.stringify(run));
    assert.equal(Date.parse(run.slot) % PERIOD_MS, 0);
    // Never before its slot (how late depends on the machine's load: no upper bound here).
    const late = Date.parse(run.startedAt) - Date.parse(run.slot);
    assert.ok(late >= 0, `run for ${run.slot} started ${-late} ms early`);
  }
  assert.equal(backups.length, taken.length, 'one backup per slot that ran');
  // Each run names the daemon that took its slot: one of the two, whichever won the lock.
  for (const run of runs) assert.ok(['a', 'b'].includes(run.daemon), `run recorded by ${run.daemon}`);
  const job = httpStatus!.clusters[0]!.jobs.find((j) => j.name === 'backup')!;
  assert.equal(job.schedule, '*/3 * * * * *');
  assert.ok(job.nextRun);
  assert.ok(httpStatus!.clusters[0]!.lastBackup.full);
  assert.ok(httpStatus!.clusters[0]!.restorableWindow?.earliest);
});

test('slots missed while every daemon was down are caught up once, not once per slot', async () => {
  const store = new FsObjectStore(repoPath);
  const before = (await readJobState(store, 'backup')).history.length;
  await sleep(2 * PERIOD_MS + 500); // at least two slots pass with no daemon running
  // Start just after a slot boundary so the catch-up run is the only one due for a while.
  while (Date.now() % PERIOD_MS > 300 || Date.now() % PERIOD_MS < 50) await sleep(20);
  const startedAt = Date.now();
  const latestMissed = startedAt - (startedAt % PERIOD_MS);
  const c = daemon('c');
  await c.start();
  try {
    const deadline = Date.now() + 20_000;
    while ((await readJobState(store, 'backup')).history.length === before && Date.now() < deadline)
      await sleep(50);
  } finally {
    await c.stop();
  }
  const state = await readJobState(store, 'backup');
  const fresh = state.history.slice(0, state.history.length - before).reverse();
  assert.ok(fresh.length >= 1, 'the missed slot was caught up');
  assert.equal(fresh[0]!.slot, new Date(latestMissed).toISOString(), 'only the newest missed slot runs');
  assert.equal(new Set(fresh.map((r) => r.slot)).size, fresh.length);
});

test('the status API answers in-process: unknown routes 404, other methods 405', async () => {
  const { createStatusApp } = await import('../../src/server/status-app.ts');
  const http = await import('node:http');
  const server = http.createServer(
    createStatusApp({ status: async () => ({ daemon: { startedAt: 'x', warnings: [] }, clusters: [] }) }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  try {
    assert.equal((await fetch(`http://127.0.0.1:${port}/api/status`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${port}/api/health`)).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${port}/nope`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${port}/api/status`, { method: 'POST' })).status, 405);
  } finally {
    server.close();
  }
});

test("status() reads through each cluster's store opened at start, none per request", async () => {
  const ownRepo = path.join(cluster.workDir, 'status-repo');
  await mkdir(ownRepo, { recursive: true });
  const quiet = backupOnlyPlan({
    connection: { ...connectionFromUrl(cluster.url()), tls: 'disable' },
    repositoryPath: ownRepo,
    baseDir: cluster.workDir,
    schedule: '*/3 * * * * *',
  });
  const only = quiet.clusters[0]!;
  only.walStreaming = false;
  only.heartbeat = false;
  for (const job of Object.keys(only.schedules) as Array<keyof typeof only.schedules>)
    only.schedules[job] = null;
  const opened: string[] = [];
  const d = new Daemon({
    plan: quiet,
    compression: 'zstd',
    http: false,
    openStore: (location) => {
      opened.push(location.path);
      return new FsObjectStore(location.path);
    },
  });
  await d.start();
  try {
    const first = await d.status();
    const second = await d.status();
    assert.equal(first.clusters[0]!.repository.location, ownRepo);
    assert.equal(second.clusters[0]!.repository.location, ownRepo);
    assert.deepEqual(opened, [ownRepo], 'one store for the one cluster, opened once');
  } finally {
    await d.stop();
  }
});
