import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { chownTree, serverRunAs } from '../../src/postgres/os-user.ts';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory, segmentDataKey } from '../../src/repository/wal-archive.ts';
import { INCOMPLETE_MARKER } from '../../src/restore/target-dir.ts';
import { freePort } from '../../src/util/free-port.ts';
import { WARDEN_BIN } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { backupWithWalTail, bytesUnder, killHard, sleep } from './helpers.ts';

/**
 * Interrupted commands (`warden backup`, `restore`, `expire` as a user runs them, in a child
 * process): the first SIGINT stops them, removes what they created and releases their locks,
 * exit 130; the second exits at once; a restore killed outright leaves a directory PostgreSQL
 * refuses and `warden restore` recognises.
 *
 * To interrupt at a known point without timing, the work is stalled first: the server's WAL
 * sender is stopped (SIGSTOP) for a backup, and a repository object is replaced by a named pipe
 * for a restore or expire, so the read of it waits until the test writes to the pipe.
 */

let cluster: TestCluster;
let repo: string;
const children = new Set<ChildProcess>();
const stopped = new Set<number>();

interface Warden {
  child: ChildProcess;
  /** stdout and stderr as they came. */
  output: () => string;
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function warden(args: string[]): Warden {
  const child = spawn(process.execPath, [WARDEN_BIN, ...args], {
    cwd: cluster.workDir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let output = '';
  let stdout = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    stdout += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  return { child, output: () => output, stdout: () => stdout, exited };
}

/** Polls until `check` holds; fails at once (with its output) if the command ends first. */
async function waitFor(what: string, run: Warden | undefined, check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) {
    if (run && run.child.exitCode !== null) assert.fail(`the command ended before ${what}:\n${run.output()}`);
    await sleep(25);
  }
}

async function files(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => !e.isDirectory()).map((e) => path.join(e.parentPath ?? e.path, e.name));
}

const tempObjects = async (dir: string) => (await files(dir)).filter((f) => f.includes('.tmp-'));
const lockFiles = async (dir: string) => readdir(path.join(dir, 'locks')).catch(() => [] as string[]);

/**
 * Replaces a repository file by a named pipe: a read of it waits until the test writes to it.
 * `release` ends the wait (that read sees end of file; later ones the real file again).
 */
async function pipeInPlaceOf(file: string) {
  const saved = `${file}.saved`;
  await rename(file, saved);
  execFileSync('mkfifo', ['-m', '0600', file]);
  let writer: FileHandle | undefined;
  let restored = false;
  const restore = async () => {
    if (restored) return;
    restored = true;
    await rm(file, { force: true });
    await rename(saved, file);
  };
  return {
    /** Opens the pipe for writing (a reader is waiting) and writes `data`, keeping it open. */
    async feed(data: Buffer) {
      writer ??= await open(file, 'w');
      await writer.write(data);
    },
    /** Meets the waiting reader, puts the real file back, then ends the pipe. */
    async release() {
      writer ??= await open(file, 'w');
      await restore();
      await writer.close();
    },
    /** Cleanup: the real file back (a reader still waiting on the pipe stays so). */
    async restore() {
      await writer?.close().catch(() => undefined);
      await restore();
    },
  };
}

before(async () => {
  cluster = await startCluster();
  // The restore tests' repository: a backup and WAL over several segments after it (written by
  // the library without a signing key, so the restores pass --allow-unsigned).
  repo = path.join(cluster.workDir, 'repo');
  await backupWithWalTail(cluster, new FsObjectStore(repo), 20_000);
  // ~80 MB of barely compressible text for the backup to be interrupted in.
  await cluster.query(
    'CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, 700000) g',
  );
});
after(async () => {
  for (const pid of stopped) process.kill(pid, 'SIGCONT');
  for (const child of children) await killHard(child);
  await cluster?.stop();
});

/** The newest complete WAL segment of the repository, and the one before it. */
async function lastSegments(): Promise<{ last: string; previous: string; file: string }> {
  const inventory = await readWalInventory(await Repository.open(new FsObjectStore(repo)));
  const records = [...inventory.segments.values()].flat();
  const last = records.at(-1)!;
  return {
    last: last.segment,
    previous: records.at(-2)!.segment,
    file: path.join(repo, segmentDataKey(last.timeline, last.segment)),
  };
}

/** A restore into `target` stalled in its WAL phase: every segment before the last is in pg_wal. */
async function restoreStalledInWal(target: string, extra: string[] = []) {
  const { previous, file } = await lastSegments();
  const pipe = await pipeInPlaceOf(file);
  const run = warden([
    'restore',
    '--latest',
    '--allow-unsigned',
    '--repo',
    repo,
    '--target-dir',
    target,
    ...extra,
  ]);
  const placed = path.join(target, 'pg_wal', previous);
  await waitFor(
    'the WAL phase',
    run,
    async () => (await stat(placed).catch(() => undefined))?.size === 16 << 20,
  );
  return { run, pipe };
}

test('SIGINT during a backup stream: exit 130, no temp object, no lock, nothing listed', async () => {
  const backupRepo = path.join(cluster.workDir, 'repo-backup');
  const run = warden([
    'backup',
    '--db',
    `${cluster.url()}?sslmode=disable`,
    '--repo',
    backupRepo,
    '--no-encryption',
    '--compression',
    'gzip',
  ]);
  const backups = path.join(backupRepo, 'backups');
  await waitFor('an object being written', run, async () => (await tempObjects(backups)).length > 0);
  const [sender] = await cluster.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_replication WHERE state = 'backup'",
  );
  assert.ok(sender, 'the base backup has a WAL sender');
  process.kill(sender.pid, 'SIGSTOP'); // the server sends nothing more: the backup is mid-way
  stopped.add(sender.pid);
  try {
    // What was in flight is written: from now on the backup waits for the server.
    let last = -1;
    await waitFor('the backup to wait for the server', run, async () => {
      const size = await bytesUnder(backups);
      const settled = size === last;
      last = size;
      if (!settled) await sleep(1000);
      return settled;
    });
    assert.deepEqual(await lockFiles(backupRepo), ['backup.lock']);
    run.child.kill('SIGINT');
    assert.deepEqual(await run.exited, { code: 130, signal: null }, run.output());
  } finally {
    process.kill(sender.pid, 'SIGCONT');
    stopped.delete(sender.pid);
  }
  assert.match(run.output(), /WARDEN_E_ABORTED/);
  assert.deepEqual(await tempObjects(backupRepo), [], 'no temp object left');
  assert.deepEqual(await lockFiles(backupRepo), [], 'locks released');
  assert.deepEqual(await readdir(path.join(backupRepo, 'backups')), [], 'nothing of the backup left');
  assert.deepEqual(await listBackups(await Repository.open(new FsObjectStore(backupRepo))), []);
});

test('SIGINT during a restore WAL phase: exit 130, an empty target is empty again (mode kept)', async () => {
  const target = path.join(cluster.workDir, 'restore-wal-sigint');
  await mkdir(target);
  await chmod(target, 0o755);
  const { run, pipe } = await restoreStalledInWal(target);
  try {
    assert.ok(existsSync(path.join(target, INCOMPLETE_MARKER)), 'marked incomplete while it runs');
    assert.ok(!existsSync(path.join(target, 'PG_VERSION')), 'PG_VERSION held back while it runs');
    assert.ok(!existsSync(path.join(target, 'global', 'pg_control')), 'pg_control held back while it runs');
    run.child.kill('SIGINT');
    // Given back at once, although the read of the stalled segment has not returned.
    await waitFor('the target to be emptied', undefined, async () => (await readdir(target)).length === 0);
    await pipe.release();
    assert.deepEqual(await run.exited, { code: 130, signal: null }, run.output());
  } finally {
    await pipe.restore();
  }
  assert.match(run.output(), /WARDEN_E_ABORTED/);
  assert.deepEqual(await readdir(target), []);
  assert.equal((await stat(target)).mode & 0o777, 0o755, 'the directory mode as found');
  assert.ok(!existsSync(`${target}_tablespaces`));
});

test('SIGINT during extraction: the target the restore created is removed; a second SIGINT exits at once', async () => {
  const target = path.join(cluster.workDir, 'restore-extract-sigint');
  const [backup] = await listBackups(await Repository.open(new FsObjectStore(repo)));
  const archive = path.join(repo, backup!.archives[0]!.key);
  const bytes = await readFile(archive);
  const pipe = await pipeInPlaceOf(archive);
  try {
    const run = warden(['restore', '--latest', '--allow-unsigned', '--repo', repo, '--target-dir', target]);
    // All of the archive but its last byte arrives, then nothing: the extraction is mid-way
    // (its last compressed frame never completes).
    await Promise.race([
      pipe.feed(bytes.subarray(0, bytes.length - 1)),
      run.exited.then(() => assert.fail(`the restore ended before it read the archive:\n${run.output()}`)),
    ]);
    await waitFor('files to be extracted', run, async () => (await files(target)).length > 100);
    run.child.kill('SIGINT');
    // Removed while the read of the archive still hangs (the process cannot end until it returns).
    await waitFor('the target to be removed', run, async () => !existsSync(target));
    run.child.kill('SIGINT');
    // Ended at once anyway, by SIGINT's default action (status 130 in a shell).
    assert.deepEqual(await run.exited, { code: null, signal: 'SIGINT' }, run.output());
  } finally {
    await pipe.restore();
  }
  assert.ok(!existsSync(target));
  assert.ok(!existsSync(`${target}_tablespaces`));
});

test('a restore killed in its WAL phase leaves a directory PostgreSQL refuses; restore names it incomplete and cleans it', async () => {
  const target = path.join(cluster.workDir, 'restore-killed');
  const killed = async () => {
    const { run, pipe } = await restoreStalledInWal(target);
    await killHard(run.child);
    await pipe.restore();
  };
  await killed();
  assert.ok(existsSync(path.join(target, 'backup_label')), 'the backup files are there');
  // Everything else in place for a start: owner, mode, a free port.
  const runAs = serverRunAs();
  await chownTree(target, runAs);
  await chmod(target, 0o700);
  const instance = new LocalInstance({
    binaries: cluster.instance.binaries,
    dataDir: target,
    port: await freePort(),
    runAs,
  });
  const refused = await instance.start({ timeoutSeconds: 60 }).then(
    () => undefined,
    (error: unknown) => error as { code: string; details: { log?: string }; cause?: Error },
  );
  if (!refused) await instance.stop({ mode: 'immediate' });
  assert.equal(
    refused?.code,
    'WARDEN_E_INSTANCE_START_FAILED',
    'PostgreSQL refuses the half-restored directory',
  );
  // pg_ctl itself refuses a directory without PG_VERSION ("not a database cluster directory").
  assert.match(`${refused.cause?.message}\n${refused.details.log}`, /PG_VERSION|database cluster directory/);
  assert.ok(!existsSync(path.join(target, 'postmaster.pid')));

  const again = warden([
    'restore',
    '--latest',
    '--allow-unsigned',
    '--repo',
    repo,
    '--target-dir',
    target,
    '--json',
  ]);
  assert.equal((await again.exited).code, 6);
  assert.equal(
    (JSON.parse(again.stdout()) as { error: { code: string } }).error.code,
    'WARDEN_E_RESTORE_INCOMPLETE',
  );
  const clean = warden(['restore', '--clean-incomplete', '--target-dir', target, '--repo', repo]);
  assert.equal((await clean.exited).code, 0, clean.output());
  assert.ok(!existsSync(target), 'removed: the restore had created it');

  await killed();
  const restored = warden([
    'restore',
    '--latest',
    '--allow-unsigned',
    '--repo',
    repo,
    '--target-dir',
    target,
    '--clean-incomplete',
    '--json',
  ]);
  assert.equal((await restored.exited).code, 0, restored.output());
  const report = JSON.parse(restored.stdout()) as { steps: Array<{ name: string; detail?: string }> };
  assert.match(report.steps.find((s) => s.name === 'check target')?.detail ?? '', /incomplete/);
  assert.ok(existsSync(path.join(target, 'PG_VERSION')));
  assert.ok(existsSync(path.join(target, 'global', 'pg_control')));
  assert.ok(!existsSync(path.join(target, INCOMPLETE_MARKER)));
  await rm(target, { recursive: true, force: true });
});

test('a restore from a repository that does not exist leaves no target behind', async () => {
  const missing = path.join(cluster.workDir, 'no-such-repo');
  const created = path.join(cluster.workDir, 'restore-no-repo');
  const run = warden(['restore', '--latest', '--repo', missing, '--target-dir', created]);
  assert.equal((await run.exited).code, 4, run.output());
  assert.match(run.output(), /WARDEN_E_REPO_NOT_INITIALIZED/);
  assert.ok(!existsSync(created), 'the directory it created is gone');
  const empty = path.join(cluster.workDir, 'restore-no-repo-empty');
  await mkdir(empty);
  assert.equal(
    (await warden(['restore', '--latest', '--repo', missing, '--target-dir', empty]).exited).code,
    4,
  );
  assert.deepEqual(await readdir(empty), [], 'the empty directory is empty again');
});

test('SIGINT during expire: exit 130, lock released', async () => {
  const expireRepo = path.join(cluster.workDir, 'repo-expire');
  const store = new FsObjectStore(expireRepo);
  await Repository.openFor(store, { systemId: '1', walSegmentSize: 16 << 20, serverVersion: '15.0' });
  // The plan reads every history file: this one stalls it while expire holds the lock.
  await store.putBuffer('wal/history/00000002.history', Buffer.from('1\t0/3000000\tno recovery target\n'));
  const pipe = await pipeInPlaceOf(path.join(expireRepo, 'wal', 'history', '00000002.history'));
  try {
    const run = warden(['expire', '--repo', expireRepo, '--keep-last', '1']);
    await waitFor('expire to hold its lock', run, async () => (await lockFiles(expireRepo)).length > 0);
    run.child.kill('SIGINT');
    await waitFor('the lock to be released', run, async () => (await lockFiles(expireRepo)).length === 0);
    await pipe.release();
    assert.deepEqual(await run.exited, { code: 130, signal: null }, run.output());
    assert.match(run.output(), /WARDEN_E_ABORTED/);
  } finally {
    await pipe.restore();
  }
  assert.deepEqual(await tempObjects(expireRepo), []);
});
