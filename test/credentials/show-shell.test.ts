import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { tempDir } from '../harness/temp-dir.ts';

let cluster: TestCluster;
let cwd: string;
let sink: string;

before(async () => {
  cluster = await startCluster();
  cwd = await tempDir('creds-shell');
  sink = path.join(cwd, 'app.json');
});
after(() => cluster?.stop());

/** psql from the server's own bin directory; the admin password in PGPASSWORD, not on the command line. */
function warden(...args: string[]): Promise<CliRun> {
  return runWarden(args, {
    cwd,
    env: {
      PGHOST: cluster.host,
      PGPORT: String(cluster.port),
      PGUSER: 'postgres',
      PGDATABASE: 'postgres',
      PGPASSWORD: cluster.password,
      WARDEN_PG_BINDIR: cluster.instance.binaries.bindir,
    },
  });
}

async function shellTempDirs(): Promise<string[]> {
  return (await readdir(os.tmpdir())).filter((name) => name.startsWith('warden-shell-'));
}

test('credentials show redacts the password unless --reveal, for the cluster login and for a role', async () => {
  const shown = await warden('credentials', 'show', '--json');
  assert.equal(shown.code, 0, shown.stderr);
  const details = JSON.parse(shown.stdout) as { host: string; port: number; user: string; password: string };
  assert.deepEqual(
    [details.host, details.port, details.user, details.password],
    [cluster.host, cluster.port, 'postgres', '[redacted]'],
  );
  const human = await warden('credentials', 'show');
  assert.ok(!human.stdout.includes(cluster.password));
  const revealed = await warden('credentials', 'show', '--reveal', '--json');
  assert.equal((JSON.parse(revealed.stdout) as { password: string }).password, cluster.password);

  assert.equal((await warden('credentials', 'setup', '--role', 'app')).code, 0);
  assert.equal((await warden('credentials', 'rotate', '--role', 'app', '--sink-file', sink)).code, 0);
  const role = await warden('credentials', 'show', '--role', 'app', '--sink-file', sink, '--json');
  assert.equal(role.code, 0, role.stderr);
  const roleDetails = JSON.parse(role.stdout) as { user: string; password: string; owner: string };
  assert.deepEqual(
    [roleDetails.user, roleDetails.owner, roleDetails.password],
    ['app_a', 'app', '[redacted]'],
  );
  const roleRevealed = await warden(
    'credentials',
    'show',
    '--role',
    'app',
    '--sink-file',
    sink,
    '--reveal',
    '--json',
  );
  assert.match((JSON.parse(roleRevealed.stdout) as { password: string }).password, /^[A-Za-z0-9_-]{43}$/);
});

test('warden shell runs psql as the chosen login with the password in a temporary 0600 file, removed afterwards', async () => {
  const before = await shellTempDirs();
  // psql reports what it was given: the session user, and the password file's path and mode.
  const run = await warden(
    'shell',
    '--role',
    'app',
    '--sink-file',
    sink,
    '--',
    '-X',
    '-At',
    '-c',
    'SELECT session_user',
    '-c',
    '\\getenv passfile PGPASSFILE',
    '-c',
    '\\echo :passfile',
    '-c',
    '\\! stat -c %a "$PGPASSFILE"; printenv PGPASSWORD || echo no-PGPASSWORD',
  );
  assert.equal(run.code, 0, run.stderr);
  const [user, passfile, mode, pgpassword] = run.stdout.trim().split('\n');
  assert.equal(user, 'app_a');
  assert.equal(mode, '600');
  assert.equal(pgpassword, 'no-PGPASSWORD');
  assert.ok(passfile?.startsWith(path.join(os.tmpdir(), 'warden-shell-')), passfile);
  assert.deepEqual(await shellTempDirs(), before);

  // psql's own exit status is the command's.
  const failing = await warden(
    'shell',
    '--',
    '-X',
    '-c',
    'SELECT * FROM no_such_table',
    '-v',
    'ON_ERROR_STOP=1',
  );
  assert.equal(failing.code, 1);
  assert.match(failing.stderr, /no_such_table/);
});
