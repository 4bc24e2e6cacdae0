import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { lockHolder } from '../../src/repository/repository-lock.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readJobState } from '../../src/scheduler/job-state.ts';
import { Schedule } from '../../src/scheduler/schedule.ts';
import {
  killHard,
  SpawnedWardens,
  waitFor as pollUntil,
  type SpawnedWarden,
} from '../harness/spawned-warden.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { bytesUnder } from '../faults/helpers.ts';

/**
 * `warden serve` as a user runs it (a child process), stopped by signals or killed while its
 * backup job runs. The only job is a backup on a yearly schedule, so each test's daemon runs
 * exactly one slot: the catch-up of this year's, which stays the same slot for the whole test.
 */

let cluster: TestCluster;
let configFile: string;
const wardens = new SpawnedWardens();
const BACKUP_SCHEDULE = '0 0 1 1 *';
const SLOT = new Schedule(BACKUP_SCHEDULE, 'UTC', 'test').latestDue(new Date())!.toISOString();

before(async () => {
  cluster = await startCluster();
  // ~240 MB of barely compressible text: a gzip backup takes seconds, long enough to interrupt.
  await cluster.query(
    'CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 2000000) g',
  );
  configFile = path.join(cluster.workDir, 'warden.yaml');
  await writeFile(
    configFile,
    [
      'repository:',
      '  compression: gzip',
      'daemon:',
      '  profile: dev',
      '  schedules:',
      '    full-backup: null',
      `    backup: "${BACKUP_SCHEDULE}"`,
      '    logical-dump: null',
      '    retention: null',
      '    verification: null',
      '    drill: null',
      '',
    ].join('\n'),
  );
});
after(async () => {
  await wardens.killAll();
  await cluster?.stop();
});

type Serve = SpawnedWarden;

function serve(repo: string): Serve {
  return wardens.spawn(
    [
      'serve',
      '--config',
      configFile,
      '--db',
      `${cluster.url()}?sslmode=disable`,
      '--repo',
      repo,
      '--no-encryption',
      '--no-http',
    ],
    { cwd: cluster.workDir },
  );
}

/** Polls every 50 ms until `condition` holds; fails with `what` after `ms`. */
function waitFor(what: string, ms: number, condition: () => Promise<boolean> | boolean): Promise<void> {
  return pollUntil(what, ms, condition, 50);
}

async function exitWithin(
  server: Serve,
  ms: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`warden serve did not exit within ${ms} ms:\n${server.output()}`)),
      ms,
    );
  });
  try {
    return await Promise.race([server.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function backupRunning(repo: string): Promise<boolean> {
  return (
    existsSync(path.join(repo, 'locks', 'backup.lock')) && (await bytesUnder(path.join(repo, 'backups'))) > 0
  );
}

async function lockFiles(repo: string): Promise<string[]> {
  const dir = path.join(repo, 'locks');
  return existsSync(dir) ? (await readdir(dir)).filter((name) => name.endsWith('.lock')) : [];
}

/** Warden's advisory job locks still held on the server (released when its session ends). */
async function advisoryLocks(): Promise<number> {
  const rows = await cluster.query<{ n: string }>(
    "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted",
  );
  return Number(rows[0]!.n);
}

test(
  'the first SIGTERM during a backup abandons it cleanly and exits 0; the open slot runs once on the next start',
  { timeout: 300_000 },
  async () => {
    const repo = path.join(cluster.workDir, 'repo-graceful');
    const store = new FsObjectStore(repo);
    const first = serve(repo);
    await waitFor('the backup job to write bytes', 60_000, () => backupRunning(repo));
    first.child.kill('SIGTERM');
    const stopped = await exitWithin(first, 60_000);
    assert.deepEqual(stopped, { code: 0, signal: null }, first.output());
    assert.match(first.output(), /stopping/);

    // Nothing half-committed: no backup listed, nothing left of the attempt, no lock.
    assert.deepEqual(await listBackups(await Repository.open(store)), []);
    assert.deepEqual(
      await readdir(path.join(repo, 'backups')).catch(() => []),
      [],
      'the attempt was removed',
    );
    assert.deepEqual(await lockFiles(repo), [], 'backup and WAL stream locks released');
    await waitFor('the job lock session to end', 10_000, async () => (await advisoryLocks()) === 0);
    const abandoned = await readJobState(store, 'backup');
    assert.equal(abandoned.lastSlot, undefined, 'the abandoned slot stays open');
    assert.deepEqual(abandoned.history, [], 'an abandoned run is not recorded as failed');

    const second = serve(repo);
    await waitFor('the open slot to be caught up', 180_000, async () => {
      const state = await readJobState(store, 'backup');
      return state.lastSlot === SLOT || second.child.exitCode !== null;
    });
    second.child.kill('SIGTERM');
    assert.deepEqual(await exitWithin(second, 60_000), { code: 0, signal: null }, second.output());
    const state = await readJobState(store, 'backup');
    assert.deepEqual(
      state.history.map((run) => [run.slot, run.status]),
      [[SLOT, 'succeeded']],
      second.output(),
    );
    const backups = await listBackups(await Repository.open(store));
    assert.equal(backups.length, 1);
    assert.deepEqual(await readdir(path.join(repo, 'backups')), [backups[0]!.id]);
    assert.deepEqual(await lockFiles(repo), []);
  },
);

test('a second SIGTERM forces the exit while the graceful stop is stuck', { timeout: 300_000 }, async () => {
  const repo = path.join(cluster.workDir, 'repo-forced');
  const server = serve(repo);
  await waitFor('the backup job to write bytes', 60_000, () => backupRunning(repo));
  // Block the heartbeat writer behind a table lock: the graceful stop waits for its write.
  const blocker = new pg.Client({ connectionString: cluster.url() });
  await blocker.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE warden_heartbeat IN ACCESS EXCLUSIVE MODE');
    await waitFor('the heartbeat to block on the lock', 10_000, async () => {
      const rows = await cluster.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'warden heartbeat' AND wait_event_type = 'Lock'",
      );
      return Number(rows[0]!.n) > 0;
    });
    server.child.kill('SIGTERM');
    await waitFor('the graceful stop to begin', 30_000, () => /stopping/.test(server.output()));
    await waitFor('the backup to be abandoned', 60_000, async () => (await lockFiles(repo)).length === 0);
    assert.equal(server.child.exitCode, null, 'still stopping: the heartbeat write is stuck');
    server.child.kill('SIGTERM');
    // Ended by SIGINT's default action (status 130 in a shell): process.exit() could hang.
    assert.deepEqual(await exitWithin(server, 30_000), { code: null, signal: 'SIGINT' }, server.output());
  } finally {
    await blocker.query('ROLLBACK').catch(() => undefined);
    await blocker.end();
  }
});

test(
  'a daemon killed during its backup: the other daemon cleans up, takes the stale locks and runs the slot once',
  { timeout: 300_000 },
  async () => {
    const repo = path.join(cluster.workDir, 'repo-killed');
    const store = new FsObjectStore(repo);
    const daemons = [serve(repo), serve(repo)];
    await waitFor('a backup job to write bytes', 60_000, () => backupRunning(repo));
    const holder = JSON.parse(await readFile(path.join(repo, 'locks', 'backup.lock'), 'utf8')) as {
      pid: number;
    };
    const victim = daemons.find((d) => d.child.pid === holder.pid);
    assert.ok(victim, `the backup runs in one of the daemons (pid ${holder.pid})`);
    const survivor = daemons.find((d) => d !== victim)!;
    await killHard(victim.child);
    assert.deepEqual(await listBackups(await Repository.open(store)), [], 'the killed backup is not listed');

    await waitFor('the survivor to run the slot', 180_000, async () => {
      const state = await readJobState(store, 'backup');
      return state.lastSlot === SLOT || survivor.child.exitCode !== null;
    });
    // The dead daemon's WAL stream lock does not block either: the survivor streams.
    await waitFor('the survivor to hold the WAL stream', 60_000, async () => {
      const stream = await lockHolder(store, 'wal-stream');
      return stream?.pid === survivor.child.pid || survivor.child.exitCode !== null;
    });
    survivor.child.kill('SIGTERM');
    assert.deepEqual(await exitWithin(survivor, 60_000), { code: 0, signal: null }, survivor.output());

    const state = await readJobState(store, 'backup');
    assert.deepEqual(
      state.history.map((run) => [run.slot, run.status, run.daemon.split(':')[1]]),
      [[SLOT, 'succeeded', String(survivor.child.pid)]],
      survivor.output(),
    );
    const backups = await listBackups(await Repository.open(store));
    assert.equal(backups.length, 1, 'one backup for the slot');
    assert.deepEqual(
      await readdir(path.join(repo, 'backups')),
      [backups[0]!.id],
      'the unfinished attempt was removed',
    );
    assert.deepEqual(await lockFiles(repo), []);
  },
);
