import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { resolveConfig } from '../../packages/app/src/db/config.ts';
import { pgConnector } from '../../packages/app/src/db/driver.ts';
import { connectError } from '../../packages/app/src/db/failure.ts';
import { isDataLayerError } from '../../packages/app/src/errors.ts';
import { freePort } from '../../src/util/free-port.ts';
import { onExit } from '../harness/cleanup.ts';
import { runWarden, WARDEN_BIN, type CliRun } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

/**
 * A known password (with a % in it) used by a backup, a WAL stream under `serve` (with the
 * password from a command), `warden status`, the status API and failing logins must never show up
 * in stdout, stderr, the logs (debug level), the status JSON or any file of the repository.
 */

const MARKER = `s3cr%t-MARKER-${process.pid}-q7`;
const WRONG = `wr0ng%-MARKER-${process.pid}-z4`;
let cluster: TestCluster;
let work: string;
let repo: string;
const outputs: string[] = [];
const children = new Set<ChildProcess>();

before(async () => {
  cluster = await startCluster();
  await cluster.query(`CREATE ROLE warden SUPERUSER LOGIN REPLICATION PASSWORD '${MARKER}'`);
  work = await mkdtemp(path.join(os.tmpdir(), 'warden-secrets-'));
  repo = path.join(work, 'repo');
  await writeFile(path.join(work, 'pw'), `${MARKER}\n`, { mode: 0o600 });
  await writeFile(path.join(work, 'wrong'), `${WRONG}\n`, { mode: 0o600 });
});
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await cluster?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A home without ~/.pgpass, debug logs; PGPASSWORD and the like never inherited. */
function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    HOME: work,
    PGPASSFILE: path.join(work, 'no-pgpass'),
    PGPASSWORD: undefined,
    WARDEN_DB: undefined,
    WARDEN_LOG_LEVEL: 'debug',
    ...extra,
  };
}

async function warden(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const run = await runWarden(args, { cwd: work, env: env(extra) });
  outputs.push(run.stdout, run.stderr);
  return run;
}

const db = (query = '?sslmode=disable') => `postgres://warden@127.0.0.1:${cluster.port}/postgres${query}`;

test('backups with --password-file and with ~/.pgpass (PGPASSFILE), which is ignored once others may read it; status', async () => {
  const backup = await warden([
    'backup',
    '--db',
    db(),
    '--password-file',
    path.join(work, 'pw'),
    '--repo',
    repo,
    '--no-encryption',
  ]);
  assert.equal(backup.code, 0, backup.stderr);
  const pgpass = path.join(work, 'pgpass');
  // The % needs no escaping in a password file; a colon would (\:).
  await writeFile(pgpass, `127.0.0.1:${cluster.port}:*:warden:${MARKER}\n`, { mode: 0o600 });
  const viaPgpass = await warden(['backup', '--db', db(), '--repo', repo, '--no-encryption'], {
    PGPASSFILE: pgpass,
  });
  assert.equal(viaPgpass.code, 0, viaPgpass.stderr);
  const status = await warden(['status', '--json', '--db', db(), '--repo', repo, '--no-encryption'], {
    PGPASSFILE: pgpass,
  });
  const parsed = JSON.parse(status.stdout) as {
    clusters: Array<{ lastBackup: { full?: unknown }; server: { reachable?: boolean } }>;
  };
  assert.ok(parsed.clusters[0]?.lastBackup.full, status.stdout);
  // Logged in with the .pgpass password (no stream runs, so status itself reports that, exit 7).
  assert.equal(parsed.clusters[0]?.server.reachable, true, status.stdout);
  await chmod(pgpass, 0o644);
  const ignored = await warden(['backup', '--db', db(), '--repo', repo, '--no-encryption'], {
    PGPASSFILE: pgpass,
  });
  assert.equal(ignored.code, 3, ignored.stderr);
  assert.match(ignored.stderr, /WARDEN_W_PGPASS_IGNORED/);
  assert.match(ignored.stderr, /WARDEN_E_AUTH_FAILED/);
});

test('a missing password is an authentication problem naming the password sources, not "unreachable"', async () => {
  const run = await warden(['backup', '--json', '--db', db(), '--repo', repo, '--no-encryption']);
  assert.equal(run.code, 3, run.stderr);
  const error = JSON.parse(run.stdout || run.stderr) as { error: { code: string; hint?: string } };
  assert.equal(error.error.code, 'WARDEN_E_AUTH_FAILED');
  assert.match(error.error.hint ?? '', /--password-file/);
  assert.match(error.error.hint ?? '', /pgpass/);
});

test('a wrong password from a file fails as authentication, and is not echoed', async () => {
  const run = await warden([
    'backup',
    '--db',
    db(),
    '--password-file',
    path.join(work, 'wrong'),
    '--repo',
    repo,
    '--no-encryption',
  ]);
  assert.equal(run.code, 3, run.stderr);
  assert.match(run.stderr, /WARDEN_E_AUTH_FAILED/);
  // The message names where the rejected password came from (the file), never the password.
  assert.ok(run.stderr.includes(path.join(work, 'wrong')), run.stderr);
});

test('a password in --db works (percent-encoded) but warns, naming the safer options; a bare % is a config error', async () => {
  const inline = `postgres://warden:${encodeURIComponent(MARKER)}@127.0.0.1:${cluster.port}/postgres?sslmode=disable`;
  const run = await warden(['backup', 'list', '--db', inline, '--repo', repo, '--no-encryption']);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /WARDEN_W_PASSWORD_ON_COMMAND_LINE/);
  assert.match(run.stderr, /--password-file/);
  const bare = `postgres://warden:${MARKER}@127.0.0.1:${cluster.port}/postgres?sslmode=disable`;
  const refused = await warden(['backup', '--db', bare, '--repo', repo, '--no-encryption']);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /WARDEN_E_CONFIG_INVALID/);
  // These two runs had the password on their own command line; only their output is checked.
  for (const text of [run.stdout, run.stderr, refused.stdout, refused.stderr]) {
    assert.ok(!text.includes(MARKER) && !text.includes(encodeURIComponent(MARKER)));
  }
  outputs.splice(-2 * 2);
});

test('serve streams WAL for a daemon cluster given as an object with passwordCommand; the status API holds no secret', async () => {
  const port = await freePort();
  const config = path.join(work, 'warden.yaml');
  await writeFile(
    config,
    [
      'daemon:',
      '  profile: dev',
      `  http: { port: ${port} }`,
      '  schedules: { full-backup: null, backup: null, logical-dump: null, retention: null, verification: null, drill: null }',
      '  clusters:',
      '    - name: main',
      '      host: 127.0.0.1',
      `      port: ${cluster.port}`,
      '      user: warden',
      '      tls: disable',
      `      passwordCommand: [cat, ${JSON.stringify(path.join(work, 'pw'))}]`,
      `      repository: ${JSON.stringify(repo)}`,
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, [WARDEN_BIN, 'serve', '--config', config, '--no-encryption'], {
    cwd: work,
    env: { ...process.env, ...env() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const removeHook = onExit(() => child.kill('SIGKILL'));
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit');
  try {
    let status = '';
    const deadline = Date.now() + 120_000;
    for (;;) {
      await cluster.query('SELECT pg_switch_wal()').catch(() => undefined);
      status = await fetch(`http://127.0.0.1:${port}/api/status`)
        .then((response) => response.text())
        .catch(() => '');
      const segments = await readdir(path.join(repo, 'wal'), { recursive: true }).catch(() => []);
      if (/"streaming"/.test(status) && segments.some((name) => /[0-9A-F]{24}(\.|$)/.test(String(name))))
        break;
      if (Date.now() > deadline) assert.fail(`WAL streaming did not start:\n${status}\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    outputs.push(status);
  } finally {
    child.kill('SIGTERM');
    await exited;
    removeHook();
    children.delete(child);
    outputs.push(output);
  }
  assert.match(output, /"level"/, 'the daemon logged');
});

test('@warden/app/db reads ~/.pgpass (PGPASSFILE) and reports a missing password as an authentication problem', async () => {
  const saved = { PGPASSFILE: process.env.PGPASSFILE, PGPASSWORD: process.env.PGPASSWORD };
  const options = {
    connectTimeoutMs: 10_000,
    keepAlive: true,
    keepAliveInitialDelayMs: 10_000,
    applicationName: 't',
  };
  const target = resolveConfig({ primary: db() }).initialPrimary!;
  const open = () =>
    pgConnector(target, options).catch((error: unknown) => {
      throw connectError(error, target.key);
    });
  try {
    delete process.env.PGPASSWORD;
    process.env.PGPASSFILE = path.join(work, 'no-pgpass');
    const error = await open().then(
      () => assert.fail('connected without a password'),
      (caught: unknown) => caught,
    );
    assert.ok(isDataLayerError(error, 'WARDEN_E_AUTH_FAILED'), String(error));
    assert.equal(error.details.reason, 'no-password');
    outputs.push(JSON.stringify({ message: error.message, hint: error.hint, details: error.details }));
    const pgpass = path.join(work, 'pgpass-db');
    await writeFile(pgpass, `127.0.0.1:${cluster.port}:postgres:warden:${MARKER}\n`, { mode: 0o600 });
    process.env.PGPASSFILE = pgpass;
    const connection = await open();
    await connection.close();
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
});

test(
  'a password given in --db is masked in the process list once Warden has started',
  { skip: existsSync('/proc/self/cmdline') ? false : 'no /proc' },
  async () => {
    const inline = `postgres://warden:${encodeURIComponent(MARKER)}@127.0.0.1:${cluster.port}/postgres?sslmode=disable`;
    const child = spawn(
      process.execPath,
      [WARDEN_BIN, 'wal', 'stream', '--db', inline, '--repo', repo, '--no-encryption'],
      { cwd: work, env: { ...process.env, ...env() }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.add(child);
    const removeHook = onExit(() => child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const warned = new Promise<void>((resolve) => {
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes('WARDEN_W_PASSWORD_ON_COMMAND_LINE')) resolve();
      });
    });
    const exited = once(child, 'exit');
    try {
      await Promise.race([warned, exited]);
      const cmdline = (await readFile(`/proc/${child.pid}/cmdline`, 'utf8')).replaceAll('\0', ' ');
      assert.ok(!cmdline.includes(encodeURIComponent(MARKER)), cmdline);
      assert.match(cmdline, /postgres:\/\/warden:\*\*\*@127\.0\.0\.1/);
    } finally {
      child.kill('SIGTERM');
      await exited;
      removeHook();
      children.delete(child);
      outputs.push(stdout, stderr);
    }
  },
);

test('the password appears nowhere: outputs, logs, status JSON, every repository file', async () => {
  const needles = [MARKER, encodeURIComponent(MARKER), WRONG, encodeURIComponent(WRONG)];
  assert.ok(outputs.length >= 10, 'the runs above produced output to search');
  for (const text of outputs) {
    for (const needle of needles) assert.ok(!text.includes(needle), `found ${needle} in:\n${text}`);
  }
  const files = (await readdir(repo, { recursive: true, withFileTypes: true })).filter((entry) =>
    entry.isFile(),
  );
  assert.ok(files.length > 5, 'the repository holds a backup and WAL');
  for (const entry of files) {
    const bytes = await readFile(path.join(entry.parentPath, entry.name));
    for (const needle of needles) {
      assert.equal(bytes.indexOf(needle), -1, `found the password in ${entry.name}`);
    }
  }
});
