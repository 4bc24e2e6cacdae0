import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;

type Run = CliRun;

const warden = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> =>
  runWarden(args, { cwd: cluster.workDir, env });

before(async () => {
  cluster = await startCluster();
  await cluster.query('CREATE TABLE t AS SELECT generate_series(1, 1000) AS id');
});
after(async () => cluster?.stop());

test('one-liners: backup, backup list and show with --json, then restore --latest --start', async () => {
  const repo = path.join(cluster.workDir, 'cli-repo');
  const db = `${cluster.url()}?sslmode=disable`;
  // Encryption is on by default; the encrypted CLI path is tested in test/encryption/cli-encryption.test.ts.
  const backup = await warden(['backup', '--db', db, '--repo', repo, '--no-encryption', '--json']);
  assert.equal(backup.code, 0, backup.stderr);
  const id = (JSON.parse(backup.stdout) as { backup: { id: string } }).backup.id;
  const list = await warden(['backup', 'list', '--repo', repo, '--json']);
  assert.equal(list.code, 0, list.stderr);
  const listed = JSON.parse(list.stdout) as { backups: Array<{ id: string }>; window: { earliest?: string } };
  assert.deepEqual(
    listed.backups.map((b) => b.id),
    [id],
  );
  assert.ok(listed.window.earliest);
  const show = await warden(['backup', 'show', id, '--repo', repo]);
  assert.equal(show.code, 0);
  assert.match(show.stdout, new RegExp(id));
  const target = path.join(cluster.workDir, 'cli-restore');
  const restored = await warden([
    'restore',
    '--latest',
    '--repo',
    repo,
    '--target-dir',
    target,
    '--start',
    '--json',
  ]);
  assert.equal(restored.code, 0, restored.stderr);
  const report = JSON.parse(restored.stdout) as { port: number };
  const rows = await cluster.query<{ n: string }>('SELECT 1 AS n');
  assert.equal(rows.length, 1);
  const { LocalInstance } = await import('../../src/postgres/local-instance.ts');
  await new LocalInstance({ binaries: cluster.instance.binaries, dataDir: target, port: report.port }).stop({
    mode: 'immediate',
  });
});

test('errors carry their code and documented exit status', async () => {
  const repo = path.join(cluster.workDir, 'cli-empty-repo');
  const missing = await warden(['backup', 'list', '--repo', repo, '--json']);
  assert.equal(missing.code, 4);
  assert.equal(
    (JSON.parse(missing.stdout) as { error: { code: string } }).error.code,
    'WARDEN_E_REPO_NOT_INITIALIZED',
  );
  const wrongPassword = await warden([
    'backup',
    '--db',
    cluster.url({ password: 'wrong' }) + '?sslmode=disable',
    '--repo',
    repo,
    '--no-encryption',
  ]);
  assert.equal(wrongPassword.code, 3);
  assert.match(wrongPassword.stderr, /WARDEN_E_AUTH_FAILED/);
  assert.doesNotMatch(wrongPassword.stderr, /wrong/, 'the password never appears in output');
  const usage = await warden(['restore', '--repo', repo, '--target-dir', '/tmp/x']);
  assert.equal(usage.code, 2);
  const dir = path.join(cluster.workDir, 'cfg');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'bad.yaml'), 'repository:\n  compression: 7\n');
  const badConfig = await warden(['backup', 'list', '--config', path.join(dir, 'bad.yaml')]);
  assert.equal(badConfig.code, 2);
  assert.match(badConfig.stderr, /repository\.compression/);
});
