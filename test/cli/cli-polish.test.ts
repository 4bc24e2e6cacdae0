import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;
let repo: string;

const warden = (args: string[]): Promise<CliRun> => runWarden(args, { cwd: cluster.workDir });
const errorOf = (run: CliRun) =>
  (JSON.parse(run.stdout) as { error: { code: string; details: Record<string, unknown> } }).error;

before(async () => {
  cluster = await startCluster();
  repo = path.join(cluster.workDir, 'polish-repo');
  const backup = await warden([
    'backup',
    '--db',
    `${cluster.url()}?sslmode=disable`,
    '--repo',
    repo,
    '--no-encryption',
  ]);
  assert.equal(backup.code, 0, backup.stderr);
});
after(async () => cluster?.stop());

test('a mistyped command is refused with the nearest name and exit 2, without the whole help', async () => {
  const typo = await warden(['backups', '--json']);
  assert.equal(typo.code, 2);
  const error = errorOf(typo);
  assert.equal(error.code, 'WARDEN_E_USAGE');
  assert.equal(error.details.suggestion, 'backup');
  const human = await warden(['resore']);
  assert.equal(human.code, 2);
  assert.match(human.stderr, /did you mean 'restore'\?/);
  assert.doesNotMatch(human.stderr, /Usage:/);
  const sub = await warden(['backup', 'lst', '--json']);
  assert.equal(sub.code, 2);
  assert.equal(errorOf(sub).details.suggestion, 'list');
});

test('warden help and warden help CMD print help and exit 0', async () => {
  const help = await warden(['help']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /Usage: warden \[options\] \[command\]/);
  const restoreHelp = await warden(['help', 'restore']);
  assert.equal(restoreHelp.code, 0, restoreHelp.stderr);
  assert.match(restoreHelp.stdout, /Usage: warden restore/);
  const nested = await warden(['help', 'backup', 'list']);
  assert.equal(nested.code, 0, nested.stderr);
  assert.match(nested.stdout, /Usage: warden backup list/);
});

test('an unknown option is a usage error (exit 2) on every command', async () => {
  for (const args of [
    ['--bogus'],
    ['backup', '--bogus'],
    ['backup', 'list', '--bogus'],
    ['repo', 'keys', '--bogus'],
  ]) {
    const run = await warden([...args, '--json']);
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.equal(errorOf(run).code, 'WARDEN_E_USAGE');
  }
});

test("a command's --help lists its own options, names the global ones once, and has examples", async () => {
  const help = await warden(['backup', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--incremental/);
  // Global options are not described per command (each line of the options table starts with two spaces and the flag).
  assert.doesNotMatch(help.stdout, /^ {2}--password-command <cmd>/m);
  assert.match(help.stdout, /Global options .*--password-command/s);
  assert.match(help.stdout, /Examples:\n {2}warden backup/);
  const root = await warden(['--help']);
  assert.match(root.stdout, /^ {2}--password-command <cmd>/m, 'warden --help explains the global options');
});

test('a taken --port is WARDEN_E_PORT_IN_USE (exit 6), as elsewhere', async () => {
  const run = await warden([
    'restore',
    '--latest',
    '--repo',
    repo,
    '--target-dir',
    path.join(cluster.workDir, 'port-taken'),
    '--port',
    String(cluster.port),
    '--start',
    '--json',
  ]);
  assert.equal(run.code, 6, run.stderr);
  assert.equal(errorOf(run).code, 'WARDEN_E_PORT_IN_USE');
  const serve = await warden([
    'serve',
    '--db',
    `${cluster.url()}?sslmode=disable`,
    '--repo',
    repo,
    '--no-encryption',
    '--http-port',
    String(cluster.port),
    '--json',
  ]);
  assert.equal(serve.code, 6, serve.stderr);
  assert.equal(errorOf(serve).code, 'WARDEN_E_PORT_IN_USE');
});

test('backup names its size check for what it is and says what it checked', async () => {
  const run = await warden([
    'backup',
    '--db',
    `${cluster.url()}?sslmode=disable`,
    '--repo',
    repo,
    '--no-encryption',
    '--json',
  ]);
  assert.equal(run.code, 0, run.stderr);
  const steps = (JSON.parse(run.stdout) as { steps: Array<{ name: string; detail?: string }> }).steps;
  assert.equal(
    steps.some((s) => s.name === 'verify stored objects'),
    false,
  );
  const check = steps.find((s) => s.name === 'check stored sizes');
  assert.ok(check, JSON.stringify(steps));
  assert.match(check.detail ?? '', /^\d+ object\(s\)/);
});

test('the outside-window error names each instant of the window once', async () => {
  const fresh = path.join(cluster.workDir, 'one-instant-repo');
  const backup = await warden([
    'backup',
    '--db',
    `${cluster.url()}?sslmode=disable`,
    '--repo',
    fresh,
    '--no-encryption',
    '--json',
  ]);
  assert.equal(backup.code, 0, backup.stderr);
  const run = await warden([
    'restore',
    '--to-time',
    '2020-01-01T00:00:00Z',
    '--repo',
    fresh,
    '--target-dir',
    path.join(cluster.workDir, 'x'),
  ]);
  assert.equal(run.code, 4);
  const window = [...run.stderr.matchAll(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z/g)].map((m) => m[0]);
  const instants = window.filter((t) => !t.startsWith('2020-'));
  assert.ok(instants.length >= 1, run.stderr);
  assert.equal(new Set(instants).size, instants.length, `an instant printed twice: ${run.stderr}`);
});

test('--to-name with an unknown name says which names exist (none here)', async () => {
  const run = await warden([
    'restore',
    '--to-name',
    'nope',
    '--repo',
    repo,
    '--target-dir',
    path.join(cluster.workDir, 'y'),
  ]);
  assert.equal(run.code, 4);
  assert.match(run.stderr, /WARDEN_E_RESTORE_POINT_NOT_FOUND/);
  assert.match(run.stderr, /holds no restore point/);
});

test('expire keep options on the command line replace the policy, and the output says so', async () => {
  const run = await warden(['expire', '--keep-last', '1', '--dry-run', '--repo', repo, '--json']);
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout) as { policyText: string; policySource: string };
  assert.equal(report.policyText, 'keep last 1');
  assert.equal(report.policySource, 'command line');
  const human = await warden(['expire', '--keep-last', '1', '--dry-run', '--repo', repo]);
  assert.match(human.stdout, /replaces the configured policy/);
  const configured = await warden(['expire', '--dry-run', '--repo', repo, '--json']);
  assert.equal((JSON.parse(configured.stdout) as { policySource: string }).policySource, 'configuration');
  assert.match((JSON.parse(configured.stdout) as { policyText: string }).policyText, /GFS daily 7/);
});
