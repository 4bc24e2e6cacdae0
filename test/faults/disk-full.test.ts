import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

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
