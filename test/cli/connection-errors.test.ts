import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;
let repo: string;
let noPassword: string;
let env: NodeJS.ProcessEnv;

interface ErrorOut {
  error: { code: string; details: { reason?: string; part?: string; field?: string } };
}

const warden = (args: string[]): Promise<CliRun> => runWarden(args, { cwd: cluster.workDir, env });

before(async () => {
  cluster = await startCluster();
  repo = path.join(cluster.workDir, 'conn-repo');
  noPassword = `postgres://postgres@127.0.0.1:${cluster.port}/postgres?sslmode=disable`;
  // No password anywhere: not in the URL, the environment, nor a .pgpass file.
  const home = path.join(cluster.workDir, 'home');
  await mkdir(home);
  env = { HOME: home, PGPASSFILE: path.join(home, 'no-pgpass'), PGPASSWORD: '' };
  const backup = await runWarden(
    ['backup', '--db', `${cluster.url()}?sslmode=disable`, '--repo', repo, '--no-encryption'],
    {
      cwd: cluster.workDir,
    },
  );
  assert.equal(backup.code, 0, backup.stderr);
});
after(async () => cluster?.stop());

test('a missing password is WARDEN_E_AUTH_FAILED (no-password) on every connection path', async () => {
  const paths = [['backup'], ['wal', 'stream'], ['slot', 'list'], ['dump', '--database', 'postgres']];
  for (const args of paths) {
    const run = await warden([...args, '--db', noPassword, '--repo', repo, '--no-encryption', '--json']);
    assert.equal(run.code, 3, `${args.join(' ')}: ${run.stdout}${run.stderr}`);
    const { error } = JSON.parse(run.stdout) as ErrorOut;
    assert.equal(error.code, 'WARDEN_E_AUTH_FAILED', args.join(' '));
    assert.equal(error.details.reason, 'no-password', args.join(' '));
  }
  // PGPASSWORD unset (above it is empty, which libpq also takes for none).
  const unset = await runWarden(['backup', '--db', noPassword, '--repo', repo, '--no-encryption', '--json'], {
    cwd: cluster.workDir,
    env: { ...env, PGPASSWORD: undefined },
  });
  assert.equal((JSON.parse(unset.stdout) as ErrorOut).error.details.reason, 'no-password');
  // A drill reports its failures instead of throwing: the source's cause is named in them.
  const drill = await warden(['drill', '--db', noPassword, '--repo', repo, '--no-encryption', '--json']);
  assert.equal(drill.code, 7, drill.stderr);
  const report = JSON.parse(drill.stdout) as { failures: string[] };
  assert.ok(
    report.failures.some((f) => f.includes('WARDEN_E_AUTH_FAILED')),
    report.failures.join('; '),
  );
});

test('a malformed --db URL is a configuration error naming the part, never an internal error', async () => {
  const cases: Array<[string, string]> = [
    [`postgres://postgres@127.0.0.1:99999/postgres`, 'port'],
    [`postgres://postgres@127.0.0.1:5x/postgres`, 'port'],
    ['postgres://postgres@[::1/postgres', 'host'],
    ['db1.example.com:5432/app', 'scheme'],
    [`postgres://postgres:pa%zz@127.0.0.1:${cluster.port}/postgres`, 'password'],
    [`postgres://postgres@127.0.0.1:${cluster.port}/app%`, 'database name'],
  ];
  for (const [url, part] of cases) {
    const run = await warden(['backup', '--db', url, '--repo', repo, '--no-encryption', '--json']);
    assert.equal(run.code, 2, `${url}: ${run.stdout}`);
    const { error } = JSON.parse(run.stdout) as ErrorOut;
    assert.equal(error.code, 'WARDEN_E_CONFIG_INVALID', url);
    assert.equal(error.details.part, part, url);
    assert.equal(error.details.field, '--db');
    assert.doesNotMatch(run.stdout, /pa%zz/, 'the password never appears');
  }
});
