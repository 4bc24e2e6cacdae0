import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { onExit } from '../harness/cleanup.ts';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { connectionOf, sleep } from './helpers.ts';

/**
 * Disk full, for real: the repository (or restore target) lives on a small tmpfs. Every path
 * must say WARDEN_E_REPO_IO with ENOSPC and exit 8, not an internal error, and leave nothing.
 */
let cluster: TestCluster;
const mounts: string[] = [];

/** A fresh tmpfs of `size` (mounting needs root, which the test machines are). */
async function smallDisk(size: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  mounts.push(dir);
  // Also when the run is interrupted before `after` (exit hooks must be synchronous).
  onExit(() => execFileSync('umount', ['-l', dir], { stdio: 'ignore' }));
  return dir;
}

before(async () => {
  cluster = await startCluster();
  // ~25 MB of table data: a backup without compression cannot fit on 8 MB.
  await cluster.query(
    'CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 300000) g',
  );
});
after(async () => {
  for (const dir of mounts) {
    execFileSync('umount', [dir]);
    await rm(dir, { recursive: true, force: true });
  }
  await cluster?.stop();
});

const warden = (args: string[]): Promise<CliRun> => runWarden(args, { cwd: cluster.workDir });

function assertDiskFull(run: CliRun): { message: string; hint?: string } {
  assert.equal(run.code, 8, `exit 8 (dependency unavailable): ${run.stdout}${run.stderr}`);
  const { error } = JSON.parse(run.stdout) as {
    error: { code: string; message: string; hint?: string; details: { errno?: string } };
  };
  assert.equal(error.code, 'WARDEN_E_REPO_IO', error.message);
  assert.match(error.message, /ENOSPC/);
  assert.equal(error.details.errno, 'ENOSPC');
  return error;
}

test('disk full during a backup: WARDEN_E_REPO_IO with ENOSPC, exit 8, nothing left behind', async () => {
  const repo = path.join(await smallDisk('8m'), 'repo');
  const db = `${cluster.url()}?sslmode=disable`;
  const run = await warden([
    'backup',
    '--db',
    db,
    '--repo',
    repo,
    '--no-encryption',
    '--compression',
    'none',
    '--json',
  ]);
  const error = assertDiskFull(run);
  assert.match(error.hint ?? '', /full/);
  assert.deepEqual(await readdir(path.join(repo, 'backups')).catch(() => []), [], 'no backup left');
  assert.equal(existsSync(path.join(repo, 'locks', 'backup.lock')), false, 'lock released');
});

test('disk full during a logical dump: WARDEN_E_REPO_IO with ENOSPC, exit 8', async () => {
  const repo = path.join(await smallDisk('1m'), 'repo');
  const db = `${cluster.url()}?sslmode=disable`;
  const run = await warden([
    'dump',
    '--database',
    'postgres',
    '--db',
    db,
    '--repo',
    repo,
    '--no-encryption',
    '--json',
  ]);
  assertDiskFull(run);
  assert.deepEqual(await readdir(path.join(repo, 'dumps')).catch(() => []), [], 'no dump left');
});

test('disk full in the restore target: WARDEN_E_REPO_IO with ENOSPC, exit 8, the target removed', async () => {
  const repo = path.join(cluster.workDir, 'roomy-repo');
  const db = `${cluster.url()}?sslmode=disable`;
  const backup = await warden(['backup', '--db', db, '--repo', repo, '--no-encryption', '--json']);
  assert.equal(backup.code, 0, backup.stderr);
  const target = path.join(await smallDisk('8m'), 'restored');
  const run = await warden(['restore', '--latest', '--repo', repo, '--target-dir', target, '--json']);
  assertDiskFull(run);
  assert.equal(existsSync(target), false, 'the target Warden created is gone');
});

/** File descriptors of this process open on files below `dir`. */
async function openFilesBelow(dir: string): Promise<string[]> {
  const targets = await Promise.all(
    (await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')),
  );
  return targets.filter((target) => target.startsWith(`${dir}/`));
}

test('disk full under the WAL stream: WARDEN_E_REPO_IO with ENOSPC, and no file handle left open', async () => {
  const disk = await smallDisk('4m');
  const abort = new AbortController();
  const receiver = new WalReceiver({
    connection: connectionOf(cluster),
    store: new FsObjectStore(path.join(disk, 'repo')),
    slotName: 'disk_full',
    signal: abort.signal,
  });
  const running = receiver.run();
  try {
    // More WAL than the disk holds: the partial segment cannot grow past ~4 MB.
    await cluster.query('INSERT INTO big SELECT * FROM big LIMIT 100000');
    // Two failed sessions, each seen while the receiver waits to reconnect.
    let failures = 0;
    for (let waiting = false; failures < 2;) {
      const status = receiver.status();
      const reconnecting = status.state === 'reconnecting';
      if (reconnecting && !waiting && status.lastError) {
        failures += 1;
        assert.equal(status.lastError.code, 'WARDEN_E_REPO_IO', status.lastError.message);
        assert.match(status.lastError.message, /ENOSPC/);
        // Between sessions nothing of the failed one is open (its partial segment included).
        assert.deepEqual(await openFilesBelow(disk), []);
      }
      waiting = reconnecting;
      await sleep(20);
    }
  } finally {
    abort.abort();
    await running;
    await cluster.query(`SELECT pg_drop_replication_slot('disk_full')`);
  }
});
