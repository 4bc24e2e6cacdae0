import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { CheckReport } from '../../src/check/run-checks.ts';
import type { CheckResult } from '../../src/check/check-result.ts';
import { X25519Identity } from '../../src/pipeline/encryption/age-keys.ts';
import { identityFileText } from '../../src/pipeline/encryption/keyring.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { acquireLock } from '../../src/repository/repository-lock.ts';
import { freePort } from '../../src/util/free-port.ts';
import { onExit } from '../harness/cleanup.ts';
import { runWarden, WARDEN_BIN, type CliRun } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { startS3, type TestS3 } from '../harness/s3.ts';
import { makeCertificates, type TestCertificates } from '../harness/tls.ts';

// Issue 12, item 7: `warden check` catches each misconfiguration it claims to, one line per
// check with the fix, and exits with the status of the first failed check's code.

let good: TestCluster;
let minimal: TestCluster;
let s3: TestS3;
let certs: TestCertificates;

before(async () => {
  certs = await makeCertificates(['IP:127.0.0.1', 'DNS:localhost']);
  [good, minimal, s3] = await Promise.all([
    startCluster(),
    // This one also serves TLS, with a certificate from a private CA.
    startCluster({
      settings: {
        wal_level: 'minimal',
        max_wal_senders: 0,
        ssl: 'on',
        ssl_cert_file: certs.certFile,
        ssl_key_file: certs.keyFile,
      },
    }),
    startS3(),
  ]);
  await good.query(`CREATE ROLE norepl LOGIN PASSWORD 'norepl-pw'`);
  await good.query(`CREATE ROLE repl LOGIN REPLICATION PASSWORD 'repl-pw'`);
});
after(async () => {
  await Promise.all([good?.stop(), minimal?.stop(), s3?.stop()]);
  if (certs) await rm(certs.dir, { recursive: true, force: true });
});

const dbOf = (cluster: TestCluster, user?: { user: string; password: string }) =>
  `${cluster.url(user)}?sslmode=disable`;

/** A fresh working directory (its own .warden/ keys) under the cluster's temp dir. */
async function workDir(cluster: TestCluster = good): Promise<string> {
  return mkdtemp(path.join(cluster.workDir, 'check-'));
}

async function check(
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): Promise<{ run: CliRun; report: CheckReport; byName: (name: string) => CheckResult }> {
  const run = await runWarden(['check', ...args, '--json'], options);
  let report: CheckReport;
  try {
    report = JSON.parse(run.stdout) as CheckReport;
  } catch {
    assert.fail(`check printed no JSON report (exit ${run.code}): ${run.stdout}\n${run.stderr}`);
  }
  const byName = (name: string) => {
    const found = report.checks.find((c) => c.name === name);
    assert.ok(found, `no ${name} line in ${run.stdout}`);
    return found;
  };
  return { run, report, byName };
}

function failed(report: CheckReport): string[] {
  return report.checks.filter((c) => c.status === 'fail').map((c) => c.name);
}

/** The temporary slots Warden's one-off receivers hold (none once they are done). */
async function temporarySlots(cluster: TestCluster): Promise<string[]> {
  return (
    await cluster.query<{ slot_name: string }>(
      "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'warden\\_tmp\\_%'",
    )
  ).map((r) => r.slot_name);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
}

async function newIdentity(dir: string, name: string): Promise<{ file: string; recipient: string }> {
  const identity = X25519Identity.generate();
  const file = path.join(dir, name);
  await writeFile(file, identityFileText(identity), { mode: 0o600 });
  return { file, recipient: identity.label };
}

test('all good: every check passes with encryption on, the WAL round trip done through a temporary slot, exit 0', async () => {
  const cwd = await workDir();
  const repo = path.join(cwd, 'repo');
  const key = await newIdentity(cwd, 'identity.txt');
  const keys = ['--recipient', key.recipient, '--identity', key.file];
  const { run, report, byName } = await check(['--db', dbOf(good), '--repo', repo, ...keys], { cwd });
  assert.equal(run.code, 0, run.stdout);
  assert.equal(report.ok, true);
  assert.deepEqual(failed(report), []);
  for (const name of ['configuration', 'connection', 'replication-role', 'pg_hba-replication', 'wal_level']) {
    assert.equal(byName(name).status, 'ok', name);
  }
  for (const name of ['max_wal_senders', 'max_replication_slots', 'clock', 'repository', 'encryption']) {
    assert.equal(byName(name).status, 'ok', name);
  }
  assert.equal(byName('decryption').status, 'ok', 'the value encrypted now decrypts with the identity');
  assert.equal(byName('signing-key').status, 'ok');
  const wal = byName('wal-archive');
  assert.equal(wal.status, 'ok', wal.message);
  assert.equal(wal.details?.switched, true);
  assert.equal(wal.details?.via, 'temporary');
  // The switched segment is in the repository, encrypted to the recipient; nothing is left behind.
  const segment = wal.details?.segment as string;
  assert.ok(
    filesUnder(repo).some((f) => path.basename(f).startsWith(segment)),
    `segment ${segment} archived`,
  );
  assert.ok(!filesUnder(repo).some((f) => f.endsWith('.probe')), 'no probe object left');
  assert.deepEqual(await temporarySlots(good), [], 'the temporary slot went with its connection');

  // The human output: one line per check, each failed or warned one with its fix.
  const human = await runWarden(['check', '--db', dbOf(good), '--repo', repo, ...keys], { cwd });
  assert.equal(human.code, 0);
  assert.equal(human.stdout.split('\n').filter((l) => /^ {2}(ok|WARN|FAIL|skip) /.test(l)).length, 15);
  assert.match(human.stdout, /check passed/);
});

test('all good with a backup and a running stream: restore space compared, WAL through the stream', async () => {
  const cwd = await workDir();
  const repo = path.join(cwd, 'repo');
  const common = ['--db', dbOf(good), '--repo', repo, '--no-encryption'];
  const backup = await runWarden(['backup', ...common], { cwd });
  assert.equal(backup.code, 0, backup.stderr);
  const stream = spawn(process.execPath, [WARDEN_BIN, 'wal', 'stream', ...common], {
    cwd,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const removeHook = onExit(() => stream.kill('SIGKILL'));
  try {
    // The stream has started once its slot is active.
    for (let i = 0; i < 300; i += 1) {
      const rows = await good.query<{ active: boolean }>('SELECT active FROM pg_replication_slots');
      if (rows.some((r) => r.active)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const { run, report, byName } = await check([...common, '--restore-dir', cwd], { cwd });
    assert.equal(run.code, 0, run.stdout);
    assert.deepEqual(failed(report), []);
    const wal = byName('wal-archive');
    assert.equal(wal.status, 'ok', wal.message);
    assert.equal(wal.details?.via, 'stream');
    const slot = byName('slot');
    assert.equal(slot.status, 'ok', slot.message);
    assert.equal(slot.details?.active, true);
    const space = byName('restore-space');
    assert.equal(space.status, 'ok', space.message);
    const details = space.details as {
      freeBytes: number;
      neededBytes: number;
      backup: string;
      filesystemOf: string;
    };
    assert.ok(details.neededBytes > 0, 'compared against the backup size');
    assert.ok(details.freeBytes >= details.neededBytes);
    assert.equal(details.filesystemOf, cwd);
    assert.match(details.backup, /^\d{8}-\d{6}F$/);
    // Stopped, the stream leaves its slot: the round trip then catches up through it.
    stream.kill('SIGINT');
    await once(stream, 'exit');
    const idle = await check(common, { cwd });
    assert.equal(idle.run.code, 0, idle.run.stdout);
    const catchUp = idle.byName('wal-archive');
    assert.equal(catchUp.status, 'ok', catchUp.message);
    assert.equal(catchUp.details?.via, 'slot');
    assert.equal(idle.byName('slot').details?.active, false);
  } finally {
    if (stream.exitCode === null && stream.signalCode === null) {
      stream.kill('SIGINT');
      await once(stream, 'exit');
    }
    removeHook();
    // The stream's own slot stays, as it should; the other tests do without it.
    for (let i = 0; i < 100; i += 1) {
      const dropped = await good
        .query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active')
        .then(
          () => true,
          () => false,
        );
      if (dropped && (await good.query('SELECT 1 FROM pg_replication_slots')).length === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
});

test('wal_level = minimal fails (with max_wal_senders = 0), the WAL round trip is not tried, exit 3', async () => {
  const cwd = await workDir(minimal);
  const { run, report, byName } = await check(
    ['--db', dbOf(minimal), '--repo', path.join(cwd, 'repo'), '--no-encryption'],
    { cwd },
  );
  assert.equal(run.code, 3, run.stdout);
  assert.equal(report.ok, false);
  const level = byName('wal_level');
  assert.equal(level.status, 'fail');
  assert.equal(level.code, 'WARDEN_E_WAL_LEVEL_MINIMAL');
  assert.match(level.fix ?? '', /wal_level = replica/);
  assert.equal(byName('max_wal_senders').code, 'WARDEN_E_NO_WAL_SENDERS');
  assert.equal(byName('wal-archive').status, 'skip');
  assert.equal(existsSync(path.join(cwd, 'repo')), false, 'the probe left no repository directory');
});

test('TLS: a verified session says so; TLS required where the server offers none fails, exit 3', async () => {
  const cwd = await workDir(minimal);
  const tls = await check(
    [
      '--db',
      `${minimal.url()}?sslmode=verify-full&sslrootcert=${encodeURIComponent(certs.caFile)}`,
      '--repo',
      path.join(cwd, 'repo'),
      '--no-encryption',
    ],
    { cwd },
  );
  const connection = tls.byName('connection');
  assert.equal(connection.status, 'ok', connection.message);
  assert.equal((connection.details?.tls as { used: boolean }).used, true);
  assert.match(connection.message, /certificate and host name verified/);

  const plain = await check(
    ['--db', `${good.url()}?sslmode=require`, '--repo', path.join(cwd, 'repo'), '--no-encryption'],
    { cwd },
  );
  assert.equal(plain.run.code, 3, plain.run.stdout);
  assert.equal(plain.byName('connection').code, 'WARDEN_E_TLS_UNAVAILABLE');
  assert.equal(plain.byName('wal_level').status, 'skip');
});

test('a role without REPLICATION fails with the ALTER ROLE that fixes it; pg_hba.conf is not blamed', async () => {
  const cwd = await workDir();
  const { run, byName } = await check(
    [
      '--db',
      dbOf(good, { user: 'norepl', password: 'norepl-pw' }),
      '--repo',
      path.join(cwd, 'repo'),
      '--no-encryption',
    ],
    { cwd },
  );
  assert.equal(run.code, 3, run.stdout);
  const role = byName('replication-role');
  assert.equal(role.status, 'fail');
  assert.equal(role.code, 'WARDEN_E_ROLE_NOT_REPLICATION');
  assert.equal(role.fix, 'ALTER ROLE "norepl" REPLICATION;');
  assert.equal(byName('pg_hba-replication').status, 'ok');
  assert.equal(byName('wal-archive').status, 'skip');
});

test('a role that may not call pg_switch_wal() gets the round trip through a commit and the GRANT; with it, the full one', async () => {
  const cwd = await workDir();
  const args = [
    '--db',
    dbOf(good, { user: 'repl', password: 'repl-pw' }),
    '--repo',
    path.join(cwd, 'repo'),
    '--no-encryption',
  ];
  const before = await check(args, { cwd });
  assert.equal(before.run.code, 0, before.run.stdout);
  const wal = before.byName('wal-archive');
  assert.equal(wal.status, 'warn', wal.message);
  assert.equal(wal.details?.switched, false);
  assert.equal(wal.fix, 'GRANT EXECUTE ON FUNCTION pg_switch_wal() TO "repl";');
  await good.query(wal.fix!);
  try {
    const granted = await check(args, { cwd });
    assert.equal(granted.run.code, 0);
    assert.equal(granted.byName('wal-archive').status, 'ok');
    assert.equal(granted.byName('wal-archive').details?.switched, true);
  } finally {
    await good.query('REVOKE EXECUTE ON FUNCTION pg_switch_wal() FROM repl');
  }
});

test('a pg_hba.conf without a replication line fails the replication connection with the line to add', async () => {
  const cwd = await workDir();
  const [{ hba_file: hbaFile }] = (await good.query<{ hba_file: string }>('SHOW hba_file')) as [
    { hba_file: string },
  ];
  const original = await readFile(hbaFile, 'utf8');
  const without = original
    .split('\n')
    .filter((line) => !/^\s*(host|local)\S*\s+replication\s/.test(line))
    .join('\n');
  assert.notEqual(without, original, 'the harness wrote a replication line');
  await writeFile(hbaFile, without);
  await good.query('SELECT pg_reload_conf()');
  try {
    const { run, byName } = await check(
      [
        '--db',
        dbOf(good, { user: 'repl', password: 'repl-pw' }),
        '--repo',
        path.join(cwd, 'repo'),
        '--no-encryption',
      ],
      { cwd },
    );
    assert.equal(run.code, 3, run.stdout);
    const hba = byName('pg_hba-replication');
    assert.equal(hba.status, 'fail');
    assert.equal(hba.code, 'WARDEN_E_ROLE_NOT_REPLICATION');
    assert.equal(hba.details?.sqlstate, '28000');
    assert.match(hba.fix ?? '', /host replication repl /);
    assert.equal(byName('replication-role').status, 'ok', 'the role itself has REPLICATION');
    assert.equal(byName('wal-archive').status, 'skip');
  } finally {
    await writeFile(hbaFile, original);
    await good.query('SELECT pg_reload_conf()');
  }
});

test("another cluster's repository fails the repository line; the WAL round trip is not tried", async () => {
  const cwd = await workDir();
  const repo = path.join(cwd, 'repo');
  const args = ['--db', dbOf(good), '--repo', repo, '--no-encryption'];
  assert.equal((await check(args, { cwd })).run.code, 0);
  // Stand-in for another cluster's repository: the recorded system identifier is another one.
  const metaFile = path.join(repo, 'warden-repo.json');
  const meta = JSON.parse(await readFile(metaFile, 'utf8')) as { systemId: string };
  await writeFile(metaFile, JSON.stringify({ ...meta, systemId: '1234567890123456789' }));
  const { run, byName } = await check(args, { cwd });
  assert.equal(run.code, 6, run.stdout);
  const repository = byName('repository');
  assert.equal(repository.status, 'fail');
  assert.equal(repository.code, 'WARDEN_E_REPO_CLUSTER_MISMATCH');
  assert.equal(byName('wal-archive').status, 'skip');
});

test('a repository path below a regular file is not writable: exit 8, nothing created', async () => {
  const cwd = await workDir();
  const file = path.join(cwd, 'a-file');
  await writeFile(file, 'not a directory\n');
  const { run, byName } = await check(
    ['--db', dbOf(good), '--repo', path.join(file, 'repo'), '--no-encryption'],
    { cwd },
  );
  assert.equal(run.code, 8, run.stdout);
  const repository = byName('repository');
  assert.equal(repository.status, 'fail');
  assert.equal(repository.code, 'WARDEN_E_REPO_IO');
  assert.match(repository.fix ?? '', /is a file/);
  assert.equal(byName('wal-archive').status, 'skip');
  assert.equal(readFileSync(file, 'utf8'), 'not a directory\n');
  assert.ok(statSync(file).isFile());
});

test('an S3 bucket that does not exist fails the repository probe with NoSuchBucket, exit 8', async () => {
  const cwd = await workDir();
  const env = {
    AWS_ENDPOINT_URL: s3.endpoint,
    AWS_REGION: s3.region,
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
  };
  const { run, byName } = await check(
    ['--db', dbOf(good), '--repo', 's3://no-such-bucket-for-check/prefix', '--no-encryption'],
    { cwd, env },
  );
  assert.equal(run.code, 8, run.stdout);
  const repository = byName('repository');
  assert.equal(repository.status, 'fail');
  assert.equal(repository.code, 'WARDEN_E_REPO_IO');
  assert.equal(repository.details?.s3Code, 'NoSuchBucket');
  assert.match(repository.fix ?? '', /create it/);

  // A bucket that exists passes, and keeps no probe object.
  const bucket = await s3.createBucket();
  const good2 = await check(['--db', dbOf(good), '--repo', `s3://${bucket}/p`, '--no-encryption'], {
    cwd,
    env,
  });
  assert.equal(good2.byName('repository').status, 'ok', good2.byName('repository').message);
  assert.equal(good2.run.code, 0, good2.run.stdout);
  const store = await s3.newStore({ bucket, prefix: 'p' });
  assert.ok(!(await store.list('')).some((k) => k.endsWith('.probe')), 'no probe object left in the bucket');
});

test('encryption on with no recipient fails with KEY_MISSING and the keygen fix, exit 2', async () => {
  const cwd = await workDir();
  const { run, byName } = await check(['--db', dbOf(good), '--repo', path.join(cwd, 'repo')], { cwd });
  assert.equal(run.code, 2, run.stdout);
  const encryption = byName('encryption');
  assert.equal(encryption.status, 'fail');
  assert.equal(encryption.code, 'WARDEN_E_KEY_MISSING');
  assert.match(encryption.fix ?? '', /warden repo keygen/);
  assert.equal(byName('wal-archive').status, 'skip');
});

test('a missing identity file, or one that is not for the recipients, fails decryption', async () => {
  const cwd = await workDir();
  const mine = await newIdentity(cwd, 'mine.txt');
  const other = await newIdentity(cwd, 'other.txt');
  const base = ['--db', dbOf(good), '--repo', path.join(cwd, 'repo'), '--recipient', mine.recipient];
  const missing = await check([...base, '--identity', path.join(cwd, 'nowhere.txt')], { cwd });
  assert.equal(missing.run.code, 2, missing.run.stdout);
  assert.equal(missing.byName('encryption').status, 'ok');
  assert.equal(missing.byName('decryption').status, 'fail');
  assert.equal(missing.byName('decryption').code, 'WARDEN_E_KEY_MISSING');

  const wrong = await check([...base, '--identity', other.file], { cwd });
  assert.equal(wrong.run.code, 2, wrong.run.stdout);
  assert.equal(wrong.byName('decryption').status, 'fail');
  assert.equal(wrong.byName('decryption').code, 'WARDEN_E_KEY_MISMATCH');
});

test('passphrase mode: a new repository gets its key from the round trip; a wrong passphrase fails and creates no key', async () => {
  const cwd = await workDir();
  const repo = path.join(cwd, 'repo');
  await writeFile(path.join(cwd, 'pass'), 'correct horse battery staple\n', { mode: 0o600 });
  await writeFile(path.join(cwd, 'wrong'), 'another passphrase\n', { mode: 0o600 });
  const args = ['--db', dbOf(good), '--repo', repo];
  const first = await check([...args, '--passphrase-file', path.join(cwd, 'pass')], { cwd });
  assert.equal(first.run.code, 0, first.run.stdout);
  assert.equal(first.byName('encryption').status, 'ok');
  assert.equal(first.byName('decryption').status, 'skip');
  assert.equal(first.byName('wal-archive').status, 'ok');
  const keys = readdirSync(path.join(repo, 'keys'));
  assert.equal(keys.length, 1, 'the round trip created the repository key');

  const again = await check([...args, '--passphrase-file', path.join(cwd, 'pass')], { cwd });
  assert.equal(again.run.code, 0, again.run.stdout);
  assert.equal(
    again.byName('decryption').status,
    'ok',
    'the passphrase opens the key the value was encrypted to',
  );

  const wrong = await check([...args, '--passphrase-file', path.join(cwd, 'wrong')], { cwd });
  assert.equal(wrong.run.code, 2, wrong.run.stdout);
  assert.equal(wrong.byName('encryption').code, 'WARDEN_E_KEY_MISMATCH');
  assert.deepEqual(readdirSync(path.join(repo, 'keys')), keys, 'no second key');
});

test('WAL not arriving: a stream that holds the lock but archives nothing fails the round trip, exit 7', async () => {
  const cwd = await workDir();
  const repo = path.join(cwd, 'repo');
  const args = ['--db', dbOf(good), '--repo', repo, '--no-encryption'];
  const first = await check(args, { cwd });
  assert.equal(first.run.code, 0, first.run.stdout);
  // Fault injection: this process holds the repository's wal-stream lock as a stalled stream would.
  const lock = await acquireLock(new FsObjectStore(repo), 'wal-stream', 'a stalled WAL stream');
  try {
    const { run, byName } = await check([...args, '--wal-timeout', '2s'], { cwd });
    assert.equal(run.code, 7, run.stdout);
    const wal = byName('wal-archive');
    assert.equal(wal.status, 'fail');
    assert.equal(wal.code, 'WARDEN_E_WAL_NOT_ARCHIVED');
    assert.equal(wal.details?.via, 'stream');
    assert.match(wal.message, new RegExp(`pid ${process.pid}`));
  } finally {
    await lock.release();
  }
});

test('WAL not arriving: a repository whose WAL cannot be stored fails the round trip', async () => {
  const cwd = await workDir();
  const repo = path.join(cwd, 'repo');
  const args = ['--db', dbOf(good), '--repo', repo, '--no-encryption'];
  assert.equal((await check(args, { cwd })).run.code, 0);
  // Archiving is impossible: a directory stands where the segment the round trip switches will
  // be stored (renaming a file onto it fails, as root too). No other writer runs meanwhile, so
  // that segment is the one the server writes to now.
  // (A commit first: right after a switch, the position is a segment boundary, which
  // pg_walfile_name() names as the segment before.)
  await good.query('SELECT pg_current_xact_id()');
  const [{ segment }] = (await good.query<{ segment: string }>(
    'SELECT pg_walfile_name(pg_current_wal_insert_lsn()) AS segment',
  )) as [{ segment: string }];
  await mkdir(path.join(repo, 'wal', '00000001', `${segment}.zst`), { recursive: true });
  const { run, report, byName } = await check([...args, '--wal-timeout', '5s'], { cwd });
  assert.notEqual(run.code, 0, run.stdout);
  assert.equal(byName('repository').status, 'ok', 'the probe at the top level still works');
  const wal = byName('wal-archive');
  assert.equal(wal.status, 'fail', wal.message);
  assert.equal(wal.details?.segment, segment);
  assert.equal(failed(report)[0], 'wal-archive');
  assert.deepEqual(await temporarySlots(good), [], 'no slot left behind');
});

test('a configuration that does not load is the first failed line; nothing else runs, exit 2', async () => {
  const cwd = await workDir();
  await writeFile(path.join(cwd, 'bad.yaml'), 'repository:\n  bogus: 1\n');
  const { run, report, byName } = await check(['--config', path.join(cwd, 'bad.yaml')], { cwd });
  assert.equal(run.code, 2, run.stdout);
  assert.equal(byName('configuration').code, 'WARDEN_E_CONFIG_INVALID');
  assert.ok(report.checks.slice(1).every((c) => c.status === 'skip'));
  assert.equal(report.checks.length, 15);
});

test('an unreachable server fails the connection and skips the server checks, exit 3', async () => {
  const cwd = await workDir();
  await mkdir(path.join(cwd, 'repo'));
  const port = await freePort();
  const { run, byName } = await check(
    [
      '--db',
      `postgres://nobody@127.0.0.1:${port}/x?sslmode=disable`,
      '--repo',
      path.join(cwd, 'repo'),
      '--no-encryption',
    ],
    { cwd },
  );
  assert.equal(run.code, 3, run.stdout);
  assert.equal(byName('connection').code, 'WARDEN_E_DB_UNREACHABLE');
  for (const name of ['replication-role', 'wal_level', 'clock', 'slot', 'wal-archive'])
    assert.equal(byName(name).status, 'skip', name);
  assert.equal(byName('repository').status, 'ok');
  assert.deepEqual(readdirSync(path.join(cwd, 'repo')), [], 'the probe was removed');
});
