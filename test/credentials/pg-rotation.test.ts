import assert from 'node:assert/strict';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { credentialsFromFile, createDatabase } from '../../packages/app/src/db/index.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { waitFor } from '../harness/spawned-warden.ts';
import { tempDir } from '../harness/temp-dir.ts';

let cluster: TestCluster;
let cwd: string;
let repo: string;

before(async () => {
  // Every statement logged: the server log must never see a generated password.
  cluster = await startCluster({ settings: { log_statement: 'all' } });
  cwd = await tempDir('creds-pg');
  repo = path.join(cwd, 'repo');
  // The audit log lives in a repository: rotations are recorded there.
  await Repository.openFor(new FsObjectStore(repo), {
    systemId: '7300000000000000016',
    walSegmentSize: 16 << 20,
    serverVersion: '15.0',
  });
});
after(() => cluster?.stop());

/** The CLI as an operator runs it; the admin URL in the environment, not on the command line. */
function warden(...args: string[]): Promise<CliRun> {
  return runWarden([...args, '--repo', repo], { cwd, env: { WARDEN_DB: cluster.url() } });
}

function errorCode(run: CliRun): string | undefined {
  return (JSON.parse(run.stdout || run.stderr) as { error?: { code?: string } }).error?.code;
}

async function sinkOf(file: string): Promise<{ user: string; password: string }> {
  return JSON.parse(await readFile(file, 'utf8')) as { user: string; password: string };
}

async function canLogIn(user: string, password: string): Promise<boolean> {
  try {
    return await withClient(
      cluster.url({ user, password }),
      async (c) => (await c.query('SELECT 1')).rowCount === 1,
    );
  } catch {
    return false;
  }
}

async function activeInComment(owner: string): Promise<string | undefined> {
  const [row] = await cluster.query<{ c: string | null }>(
    "SELECT shobj_description(oid, 'pg_authid') AS c FROM pg_roles WHERE rolname = $1",
    [owner],
  );
  return row?.c
    ? (JSON.parse(row.c) as { wardenCredentials: { active: string } }).wardenCredentials.active
    : undefined;
}

test('setup creates a NOLOGIN owner and two member logins, is idempotent, quotes names, and refuses roles of another shape', async () => {
  const first = await warden('credentials', 'setup', '--role', 'shop', '--json');
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual((JSON.parse(first.stdout) as { created: string[] }).created, ['shop', 'shop_a', 'shop_b']);
  const roles = await cluster.query<{ rolname: string; rolcanlogin: boolean; member: boolean }>(
    `SELECT r.rolname, r.rolcanlogin,
            pg_has_role(r.oid, 'shop', 'MEMBER') AND r.rolname <> 'shop' AS member
       FROM pg_roles r WHERE r.rolname LIKE 'shop%' ORDER BY 1`,
  );
  assert.deepEqual(
    roles.map((r) => [r.rolname, r.rolcanlogin, r.member]),
    [
      ['shop', false, false],
      ['shop_a', true, true],
      ['shop_b', true, true],
    ],
  );
  const again = await warden('credentials', 'setup', '--role', 'shop', '--json');
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual((JSON.parse(again.stdout) as { existing: string[] }).existing, [
    'shop',
    'shop_a',
    'shop_b',
  ]);

  // A name that needs quoting is created as written, not interpreted.
  const odd = await warden('credentials', 'setup', '--role', 'we"ird; DROP ROLE shop', '--json');
  assert.equal(odd.code, 0, odd.stderr);
  const made = await cluster.query("SELECT 1 FROM pg_roles WHERE rolname = 'we\"ird; DROP ROLE shop_b'");
  assert.equal(made.length, 1);
  assert.equal((await cluster.query("SELECT 1 FROM pg_roles WHERE rolname = 'shop'")).length, 1);

  // An existing role of another shape is never altered.
  await cluster.query('CREATE ROLE legacy LOGIN');
  const refused = await warden('credentials', 'setup', '--role', 'legacy', '--json');
  assert.equal(refused.code, 6);
  assert.equal(errorCode(refused), 'WARDEN_E_ROLE_SHAPE');
  assert.equal((await cluster.query("SELECT 1 FROM pg_roles WHERE rolname LIKE 'legacy_%'")).length, 0);

  const unset = await warden(
    'credentials',
    'rotate',
    '--role',
    'nobody',
    '--sink-file',
    path.join(cwd, 'x.json'),
    '--json',
  );
  assert.equal(errorCode(unset), 'WARDEN_E_ROLES_NOT_SET_UP');
});

test('rotation under a read/write workload through @warden/app/db: zero failed queries, old sessions age out, new ones use the new login', async () => {
  const sink = path.join(cwd, 'app-db.json');
  assert.equal((await warden('credentials', 'setup', '--role', 'app')).code, 0);
  await cluster.query(
    'CREATE TABLE items (id bigserial PRIMARY KEY, n int NOT NULL); ALTER TABLE items OWNER TO app',
  );
  const first = await warden('credentials', 'rotate', '--role', 'app', '--sink-file', sink);
  assert.equal(first.code, 0, first.stderr);
  const initial = await sinkOf(sink);
  assert.equal(initial.user, 'app_a');
  assert.ok(initial.password.length >= 32);
  assert.equal((await stat(sink)).mode & 0o777, 0o600);

  const applicationName = 'rotation-workload';
  const db = createDatabase({
    primary: `postgres://${cluster.host}:${cluster.port}/postgres`,
    credentials: credentialsFromFile(sink),
    environment: 'dev',
    applicationName,
    // Short lifetimes so old sessions age out within the test; 2.5 % jitter spreads them.
    pools: {
      write: { minIdle: 2, maxSize: 4, maxLifetimeMs: 3_000 },
      read: { minIdle: 1, maxSize: 2, maxLifetimeMs: 3_000 },
    },
  });
  const sessions = async () =>
    (
      await cluster.query<{ usename: string }>(
        'SELECT usename FROM pg_stat_activity WHERE application_name = $1',
        [applicationName],
      )
    ).map((r) => r.usename);
  let stop = false;
  let done = 0;
  const failures: unknown[] = [];
  const worker = async (i: number) => {
    while (!stop) {
      try {
        await db.query('INSERT INTO items (n) VALUES ($1)', [i]);
        await db.query('SELECT count(*) FROM items WHERE n = $1', [i], { role: 'read' });
        await db.transaction(async (tx) => {
          await tx.query('UPDATE items SET n = n WHERE id = (SELECT max(id) FROM items)');
        });
        done += 1;
      } catch (error) {
        failures.push(error);
      }
    }
  };
  try {
    await db.start();
    const workers = [0, 1, 2, 3].map(worker);
    await waitFor(
      'the workload to run on app_a',
      30_000,
      async () => done > 20 && (await sessions()).includes('app_a'),
    );

    // A session opened as app_a and held across the rotation goes on working as app_a.
    let rotationDone!: () => void;
    const afterRotation = new Promise<void>((resolve) => (rotationDone = resolve));
    const held = db.transaction(async (tx) => {
      await tx.query('SELECT 1');
      await afterRotation;
      const { rows } = await tx.query<{ who: string }>('SELECT session_user AS who');
      await tx.query('INSERT INTO items (n) VALUES (99)');
      return rows[0]?.who;
    });
    const rotated = await warden('credentials', 'rotate', '--role', 'app', '--sink-file', sink, '--json');
    rotationDone();
    assert.equal(await held, 'app_a');
    assert.equal(rotated.code, 0, rotated.stderr);
    const report = JSON.parse(rotated.stdout) as { previous: string; active: string };
    assert.deepEqual([report.previous, report.active], ['app_a', 'app_b']);
    const next = await sinkOf(sink);
    assert.equal(next.user, 'app_b');
    assert.ok(!rotated.stdout.includes(next.password) && !rotated.stderr.includes(next.password));
    assert.equal(await activeInComment('app'), 'app_b');
    const doneAtRotation = done;

    // The sessions opened as app_a keep serving until their lifetime ends; new ones are app_b.
    await waitFor('every pooled session to be app_b', 60_000, async () => {
      const users = await sessions();
      return users.length > 0 && users.every((u) => u === 'app_b');
    });
    await waitFor('the workload to go on', 30_000, () => done > doneAtRotation + 20);
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(failures, []);

    // The previous login kept its password; the next rotation replaces it.
    assert.equal(await canLogIn('app_a', initial.password), true);
    assert.equal((await warden('credentials', 'rotate', '--role', 'app', '--sink-file', sink)).code, 0);
    assert.equal(await canLogIn('app_a', initial.password), false);
    assert.equal(await canLogIn('app_b', next.password), true);
    const third = await sinkOf(sink);
    assert.equal(third.user, 'app_a');
    assert.equal(await canLogIn('app_a', third.password), true);
  } finally {
    stop = true;
    await db.close();
  }

  // Audited, and the secret is in no file of the repository (records, head, anything).
  const listed = await warden('audit', 'list', '--json');
  const records = (
    JSON.parse(listed.stdout) as { records: Array<{ action: string; target?: string; outcome: string }> }
  ).records;
  const rotations = records.filter((r) => r.action === 'credentials rotate' && r.outcome === 'succeeded');
  assert.ok(rotations.length >= 3);
  assert.ok(rotations.every((r) => r.target === 'role app'));
  const secret = (await sinkOf(sink)).password;
  const serverLog = await readFile(cluster.instance.logFile, 'utf8');
  assert.match(serverLog, /ALTER ROLE "app_a" PASSWORD 'SCRAM-SHA-256\$4096:/);
  assert.ok(!serverLog.includes(secret) && !serverLog.includes(initial.password));
  for (const file of await readdir(repo, { recursive: true, withFileTypes: true })) {
    if (!file.isFile()) continue;
    const bytes = await readFile(path.join(file.parentPath, file.name));
    assert.ok(!bytes.includes(secret) && !bytes.includes(initial.password), `${file.name} holds a secret`);
  }
});

test('a second rotation of the same role waits for the lock and gives up with WARDEN_E_ROTATION_LOCKED', async () => {
  const sink = path.join(cwd, 'locked.json');
  assert.equal((await warden('credentials', 'setup', '--role', 'locked')).code, 0);
  await withClient(cluster.url(), async (holder) => {
    await holder.query("SELECT pg_advisory_lock(hashtextextended('warden-credentials:locked', 0))");
    const run = await warden(
      'credentials',
      'rotate',
      '--role',
      'locked',
      '--sink-file',
      sink,
      '--lock-timeout',
      '1s',
      '--json',
    );
    assert.equal(run.code, 6);
    assert.equal(errorCode(run), 'WARDEN_E_ROTATION_LOCKED');
  });
  await assert.rejects(stat(sink), { code: 'ENOENT' });
  assert.equal(await activeInComment('locked'), undefined);
});

test('a command sink gets the secret on standard input, never in argv; a failing one leaves the active login as it was', async () => {
  const out = path.join(cwd, 'from-stdin.json');
  const argvLog = path.join(cwd, 'argv.json');
  const script = path.join(cwd, 'sink.mjs');
  await writeFile(
    script,
    [
      "import { readFileSync, writeFileSync } from 'node:fs';",
      'const input = readFileSync(0, "utf8");',
      'writeFileSync(process.argv[3], JSON.stringify(process.argv));',
      'if (process.argv[4] === "fail") { process.stderr.write("rejected " + input); process.exit(3); }',
      'writeFileSync(process.argv[2], input);',
    ].join('\n'),
  );
  await writeFile(
    path.join(cwd, 'warden.yaml'),
    JSON.stringify({
      credentials: {
        postgres: {
          billing: {
            owner: 'billing_owner',
            logins: ['billing_blue', 'billing_green'],
            sink: { command: [process.execPath, script, out, argvLog] },
          },
          broken: { sink: { command: [process.execPath, script, out, argvLog, 'fail'] } },
        },
      },
    }),
  );
  assert.equal((await warden('credentials', 'setup', '--role', 'billing')).code, 0);
  const ok = await warden('credentials', 'rotate', '--role', 'billing');
  assert.equal(ok.code, 0, ok.stderr);
  const received = await sinkOf(out);
  assert.equal(received.user, 'billing_blue');
  assert.equal(await canLogIn('billing_blue', received.password), true);
  assert.ok(!(await readFile(argvLog, 'utf8')).includes(received.password));

  assert.equal((await warden('credentials', 'setup', '--role', 'broken')).code, 0);
  assert.equal(
    (await warden('credentials', 'rotate', '--role', 'broken', '--sink-file', path.join(cwd, 'b.json'))).code,
    0,
  );
  const failed = await warden('credentials', 'rotate', '--role', 'broken', '--json');
  assert.equal(failed.code, 8);
  assert.equal(errorCode(failed), 'WARDEN_E_SECRET_SINK');
  // The program echoed what it read: Warden shows its output with the secret cut out.
  assert.match(
    failed.stdout + failed.stderr,
    /rejected \{\\"user\\":\\"broken_b\\",\\"password\\":\\"\[redacted\]\\"\}/,
  );
  assert.equal(await activeInComment('broken'), 'broken_a');
});
