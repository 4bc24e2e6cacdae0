import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { serverRunAs } from '../../src/postgres/os-user.ts';
import { resolveRepositoryGroup } from '../../src/repository/fs/repository-group.ts';
import type { VerifyReport } from '../../src/verify/verify-report.ts';
import { onExit } from '../harness/cleanup.ts';
import { WARDEN_BIN, type CliRun } from '../harness/cli.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';

// The real CLI, run with umask 000 as a careless service unit might: every mode asserted below
// is one Warden set itself (the umask would have made 0777 directories and 0666 files).

let cluster: TestCluster;
let db: string;
let passphraseFile: string;
const children = new Set<ChildProcess>();

before(async () => {
  cluster = await startCluster();
  db = `${cluster.url()}?sslmode=disable`;
  await cluster.query('CREATE TABLE t AS SELECT generate_series(1, 1000) AS id');
  passphraseFile = path.join(cluster.workDir, 'passphrase.txt');
  await writeFile(passphraseFile, 'a long and private passphrase\n', { mode: 0o600 });
});
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await cluster?.stop();
});

const UMASK_000 = ['-c', 'umask 000 && exec "$@"', 'sh', process.execPath, WARDEN_BIN];

function warden(args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile('sh', [...UMASK_000, ...args], { cwd: cluster.workDir }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

interface Entry {
  key: string;
  directory: boolean;
  mode: number;
  gid: number;
}

async function entries(root: string): Promise<Entry[]> {
  const found: Entry[] = [];
  const walk = async (current: string) => {
    // A running writer renames its temp files away between readdir and lstat: such a name is gone.
    const info = await lstat(current).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' && current !== root) return undefined;
      throw error;
    });
    if (!info) return;
    found.push({
      key: path.relative(root, current) || '.',
      directory: info.isDirectory(),
      mode: info.mode & 0o7777,
      gid: info.gid,
    });
    if (info.isDirectory()) for (const name of await readdir(current)) await walk(path.join(current, name));
  };
  await walk(root);
  return found;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `warden wal stream` (umask 000) until a segment is archived and the next one is being
 * received, calls `whileRunning` with the repository as it is then, and stops the stream.
 */
async function streamWal(repo: string, extra: string[], whileRunning: () => Promise<void>): Promise<void> {
  const child = spawn(
    'sh',
    [
      ...UMASK_000,
      'wal',
      'stream',
      '--db',
      db,
      '--repo',
      repo,
      '--passphrase-file',
      passphraseFile,
      ...extra,
    ],
    { cwd: cluster.workDir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  const removeHook = onExit(() => child.kill('SIGKILL'));
  let output = '';
  child.stdout.on('data', (data: Buffer) => (output += data.toString()));
  child.stderr.on('data', (data: Buffer) => (output += data.toString()));
  const exited = once(child, 'exit');
  try {
    const files = async () => (await entries(repo).catch(() => [] as Entry[])).map((e) => e.key);
    const archived = async () =>
      (await files()).filter((key) => /^wal\/[0-9A-F]{8}\/[0-9A-F]{24}\.json$/.test(key));
    const deadline = Date.now() + 60_000;
    const waitFor = async (what: string, condition: () => Promise<boolean>) => {
      while (!(await condition())) {
        assert.ok(Date.now() < deadline, `${what} in time: ${output}`);
        await sleep(100);
      }
    };
    // The backup already archived WAL (and left a partial): wait for this stream's own work.
    await waitFor('the stream holds its lock', async () => (await files()).includes('locks/wal-stream.lock'));
    const before = new Set(await archived());
    await waitFor('a segment archived by the stream', async () => {
      await cluster.query('INSERT INTO t SELECT generate_series(1, 100); SELECT pg_switch_wal()');
      return (await archived()).some((key) => !before.has(key));
    });
    // More WAL, so the partial segment has been appended to, not only created.
    await cluster.query('INSERT INTO t SELECT generate_series(1, 100)');
    await sleep(300);
    await whileRunning().catch((error: Error) => {
      error.message += `\nwal stream output: ${output}`;
      throw error;
    });
  } finally {
    child.kill('SIGINT');
    await exited;
    removeHook();
    children.delete(child);
  }
}

function assertModes(all: Entry[], dirMode: number, fileMode: number, gid?: number): void {
  for (const entry of all) {
    assert.equal(
      entry.mode,
      entry.directory ? dirMode : fileMode,
      `${entry.key}: 0${entry.mode.toString(8)}, expected 0${(entry.directory ? dirMode : fileMode).toString(8)}`,
    );
    if (gid !== undefined) assert.equal(entry.gid, gid, `${entry.key}: group`);
  }
}

/** Every kind of file a backup plus a WAL stream write is there (so the mode checks cover them). */
function assertCoverage(all: Entry[]): void {
  const keys = all.map((e) => e.key);
  for (const pattern of [
    /^warden-repo\.json$/,
    /^keys\/.+/,
    /^backups\/[^/]+\/backup\.json$/,
    /^backups\/[^/]+\/base\.tar/,
    /^wal\/[0-9A-F]{8}\/[0-9A-F]{24}\.json$/,
    /partial/,
    /^locks\/.+\.lock$/,
  ])
    assert.ok(
      keys.some((key) => pattern.test(key)),
      `${pattern} among ${keys.join(', ')}`,
    );
}

test('CLI under umask 000: a backup and a WAL stream leave a repository of 0700 directories and 0600 files', async () => {
  const repo = path.join(cluster.workDir, 'private', 'repo');
  const backup = await warden([
    'backup',
    '--db',
    db,
    '--repo',
    repo,
    '--passphrase-file',
    passphraseFile,
    '--json',
  ]);
  assert.equal(backup.code, 0, backup.stderr);
  await streamWal(repo, [], async () => {
    assertCoverage(await entries(repo));
    // The parent `private` was created by Warden too (the repository's missing parent).
    assertModes(await entries(path.join(cluster.workDir, 'private')), 0o700, 0o600);
  });
  assertModes(await entries(repo), 0o700, 0o600);

  const verify = await warden(['verify', '--repo', repo, '--passphrase-file', passphraseFile, '--json']);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  const report = JSON.parse(verify.stdout) as VerifyReport;
  assert.equal(report.modes?.policy, 'owner only');
  assert.equal(report.modes?.looseCount, 0);

  // An older repository's looser entries: verify warns (exit status unchanged) and names the fix.
  await chmod(path.join(repo, 'warden-repo.json'), 0o644);
  const human = await warden(['verify', '--repo', repo, '--passphrase-file', passphraseFile]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /warning: 1 repository entries are open to more users than owner only/);
  assert.match(human.stdout, /0644 file {6}warden-repo\.json/);
  assert.match(human.stdout, /fix: chmod -R go= /);
  await chmod(path.join(repo, 'warden-repo.json'), 0o600);

  // Restored into a directory someone made 0777: PostgreSQL needs 0700, and starts.
  const target = path.join(cluster.workDir, 'restored');
  await mkdir(target);
  await chmod(target, 0o777);
  await restoreAndQuery(repo, target, 0o700);
});

test('CLI with --repo-group: 0750 directories and 0640 files owned by the group, readable by its members', async () => {
  const group = resolveRepositoryGroup('postgres', 'test');
  assert.notEqual(group.gid, process.getgid!());
  const repo = path.join(cluster.workDir, 'shared');
  const backup = await warden([
    'backup',
    '--db',
    db,
    '--repo',
    repo,
    '--repo-group',
    'postgres',
    '--passphrase-file',
    passphraseFile,
    '--json',
  ]);
  assert.equal(backup.code, 0, backup.stderr);
  await streamWal(repo, ['--repo-group', 'postgres'], async () => {
    const all = await entries(repo);
    assertCoverage(all);
    assertModes(all, 0o750, 0o640, group.gid);
  });
  // PostgreSQL's own user (in the group, not the owner) reads an archived segment; nobody does not.
  const [segment] = (await entries(repo)).filter((e) => /^wal\/[0-9A-F]{8}\/[0-9A-F]{24}\.zst/.test(e.key));
  const file = path.join(repo, segment!.key);
  const pgUser = serverRunAs()!;
  execFileSync('cat', [file], { uid: pgUser.uid, gid: group.gid, stdio: 'ignore' });
  const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
  assert.throws(() => execFileSync('cat', [file], { uid: nobody, gid: nobody, stdio: 'ignore' }));

  const verify = await warden([
    'verify',
    '--repo',
    repo,
    '--repo-group',
    'postgres',
    '--passphrase-file',
    passphraseFile,
    '--json',
  ]);
  const report = JSON.parse(verify.stdout) as VerifyReport;
  assert.equal(report.modes?.policy, 'owner and group postgres');
  assert.equal(report.modes?.looseCount, 0);
  // The same repository judged by the owner-only policy: every group bit is too loose.
  const strict = JSON.parse(
    (await warden(['verify', '--repo', repo, '--passphrase-file', passphraseFile, '--json'])).stdout,
  ) as VerifyReport;
  assert.equal(strict.modes?.looseCount, strict.modes?.checked);
});

test('a source cluster with group access (0750, files 0640) is restored with group access and starts', async () => {
  const dataDir = cluster.instance.dataDir;
  execFileSync('chmod', ['-R', 'g+rX', dataDir]);
  assert.equal((await stat(path.join(dataDir, 'PG_VERSION'))).mode & 0o777, 0o640);
  const repo = path.join(cluster.workDir, 'group-access');
  const backup = await warden([
    'backup',
    '--db',
    db,
    '--repo',
    repo,
    '--passphrase-file',
    passphraseFile,
    '--json',
  ]);
  assert.equal(backup.code, 0, backup.stderr);
  await restoreAndQuery(repo, path.join(cluster.workDir, 'restored-group'), 0o750);
});

async function restoreAndQuery(repo: string, target: string, expectedMode: number): Promise<void> {
  const restored = await warden([
    'restore',
    '--latest',
    '--repo',
    repo,
    '--passphrase-file',
    passphraseFile,
    '--target-dir',
    target,
    '--start',
    '--json',
  ]);
  // Stopped afterwards when it started (a failed restore prints an error instead of a port).
  const port = (JSON.parse(restored.stdout || '{}') as { port?: number }).port;
  const instance = port
    ? new LocalInstance({ binaries: cluster.instance.binaries, dataDir: target, port })
    : undefined;
  try {
    assert.equal(restored.code, 0, restored.stdout + restored.stderr);
    assert.equal((await stat(target)).mode & 0o7777, expectedMode);
    const [row] = await withClient(
      cluster.url().replace(`:${cluster.port}/`, `:${port}/`),
      async (client) => (await client.query<{ n: string }>('SELECT count(*) AS n FROM t')).rows,
    );
    assert.ok(Number(row!.n) >= 1000);
    // Files restore wrote itself: the server user's only (its group may read with group access).
    const allowed = expectedMode === 0o750 ? 0o640 : 0o600;
    for (const name of ['recovery.signal', 'postgresql.auto.conf'])
      if (existsSync(path.join(target, name)))
        assert.equal((await stat(path.join(target, name))).mode & 0o777 & ~allowed, 0, name);
    for (const name of await readdir(path.join(target, 'pg_wal'))) {
      const info = await stat(path.join(target, 'pg_wal', name));
      if (info.isFile()) assert.equal(info.mode & 0o777 & ~allowed, 0, `pg_wal/${name}`);
    }
  } finally {
    await instance?.stop({ mode: 'immediate' });
  }
}
