import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { segmentDataKey, segmentRecordKey } from '../../src/repository/wal-archive.ts';
import { recordVerification, verifyRestore } from '../../src/verify/restore-check.ts';
import { freePort } from '../../src/util/free-port.ts';
import { sleep } from '../faults/helpers.ts';
import { runWarden } from '../harness/cli.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { streamInto, type StreamingRepository } from '../harness/streaming.ts';

/**
 * `warden status` as a probe: one process per call, as a monitoring system runs it. One cluster
 * and one repository, taken from healthy to each unhealthy state in turn; every state has its
 * finding code and exit status (docs/status.md), and the most severe one sets the exit status.
 */

interface StatusJson {
  format: number;
  exitCode: number;
  clusters: Array<{
    profile: string;
    objectives: { rtoMs: number; rpoMs: number; origin: string; source: string };
    server: {
      checked: boolean;
      reachable?: boolean;
      error?: { code: string; message: string; reason?: string };
    };
    repository: { reachable: boolean };
    findings: Array<{ code: string; exit: number; message: string; error?: { code: string } }>;
  }>;
}

let cluster: TestCluster;
let stream: StreamingRepository | undefined;
const repoDir = () => path.join(cluster.workDir, 'repo');
const db = (password = cluster.password, port = cluster.port) =>
  `postgres://postgres:${password}@127.0.0.1:${port}/postgres?sslmode=disable`;

async function status(
  extra: string[] = [],
  options: { db?: string; repo?: string; env?: NodeJS.ProcessEnv } = {},
) {
  const run = await runWarden(
    ['status', '--db', options.db ?? db(), '--repo', options.repo ?? repoDir(), '--json', ...extra],
    { cwd: cluster.workDir, ...(options.env ? { env: options.env } : {}) },
  );
  const parsed = JSON.parse(run.stdout) as StatusJson;
  const codes = parsed.clusters.flatMap((c) => c.findings.map((f) => f.code));
  return { run, parsed, codes };
}

async function writeConfig(name: string, lines: string[]): Promise<string> {
  const file = path.join(cluster.workDir, name);
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

before(async () => {
  cluster = await startCluster();
  await withClient(cluster.url(), (client) => createLedger(client));
  stream = streamInto(cluster);
  await stream.waitForArchive();
  const backup = await runWarden(['backup', '--db', db(), '--repo', repoDir(), '--no-encryption'], {
    cwd: cluster.workDir,
  });
  assert.equal(backup.code, 0, backup.stderr);
  await stream.waitForArchive();
});

after(async () => {
  await stream?.stop();
  await cluster?.stop();
});

test('a healthy cluster: no finding, exit 0', async () => {
  const { run, parsed, codes } = await status();
  assert.deepEqual(codes, [], run.stdout);
  assert.equal(run.code, 0);
  assert.equal(parsed.exitCode, 0);
  assert.equal(parsed.format, 1);
  assert.equal(parsed.clusters[0]!.server.reachable, true);
  const human = await runWarden(['status', '--db', db(), '--repo', repoDir()], { cwd: cluster.workDir });
  assert.equal(human.code, 0);
  assert.match(human.stdout, /healthy \(exit 0\)/);
});

test('a wrong password: server-auth-failed, exit 3', async () => {
  const { run, parsed, codes } = await status([], { db: db('not-the-password') });
  assert.deepEqual(codes, ['server-auth-failed'], run.stdout);
  assert.equal(parsed.clusters[0]!.server.error?.code, 'WARDEN_E_AUTH_FAILED');
  assert.equal(run.code, 3);
});

test('nothing listening on the port: server-unreachable, exit 3', async () => {
  const { run, codes } = await status([], { db: db(cluster.password, await freePort()) });
  assert.deepEqual(codes, ['server-unreachable'], run.stdout);
  assert.equal(run.code, 3);
});

test('a repository that does not exist: repository-missing, exit 4, and it outranks a refused login', async () => {
  const missing = path.join(cluster.workDir, 'no-such-repo');
  const alone = await status([], { repo: missing });
  assert.deepEqual(alone.codes, ['repository-missing'], alone.run.stdout);
  assert.equal(alone.run.code, 4);
  const both = await status([], { repo: missing, db: db('not-the-password') });
  assert.deepEqual(both.codes, ['repository-missing', 'server-auth-failed']);
  assert.equal(both.run.code, 4);
});

test('no password anywhere: server-auth-failed with reason no-password, exit 3 (not server-unreachable)', async () => {
  const home = path.join(cluster.workDir, 'home-no-password');
  await mkdir(home, { recursive: true });
  // Not in the URL, the environment (empty is none for libpq too), nor a .pgpass file.
  const env = { HOME: home, PGPASSFILE: path.join(home, 'no-pgpass'), PGPASSWORD: '' };
  const { run, parsed, codes } = await status([], {
    db: `postgres://postgres@127.0.0.1:${cluster.port}/postgres?sslmode=disable`,
    env,
  });
  assert.deepEqual(codes, ['server-auth-failed'], run.stdout);
  assert.equal(run.code, 3);
  const error = parsed.clusters[0]!.server.error;
  assert.equal(error?.code, 'WARDEN_E_AUTH_FAILED', run.stdout);
  assert.equal(error?.reason, 'no-password', run.stdout);
  assert.equal(parsed.clusters[0]!.findings[0]!.error?.code, 'WARDEN_E_AUTH_FAILED');
});

test('a damaged warden-repo.json: repository-unreadable, exit 5', async () => {
  const damaged = path.join(cluster.workDir, 'damaged-repo');
  await mkdir(damaged, { recursive: true });
  await writeFile(path.join(damaged, 'warden-repo.json'), '{"format": 1, "systemId": "7');
  const { run, parsed, codes } = await status([], { repo: damaged });
  assert.deepEqual(codes, ['repository-unreadable'], run.stdout);
  assert.equal(run.code, 5);
  assert.equal(parsed.clusters[0]!.repository.reachable, false);
  assert.equal(parsed.clusters[0]!.findings[0]!.error?.code, 'WARDEN_E_REPO_FORMAT');
});

test('storage that does not answer: repository-unreachable, exit 8 (an S3 endpoint whose server is down, a path through a file)', async () => {
  // Nothing listens on the endpoint's port: the S3 server is stopped. The SDK retries, then gives up.
  const env = {
    AWS_ENDPOINT_URL: `http://127.0.0.1:${await freePort()}`,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
  };
  const s3 = await status([], { repo: 's3://stopped-server/prefix', env });
  assert.deepEqual(s3.codes, ['repository-unreachable'], s3.run.stdout);
  assert.equal(s3.run.code, 8);
  assert.equal(s3.parsed.clusters[0]!.findings[0]!.error?.code, 'WARDEN_E_REPO_IO');
  // A repository path below a regular file cannot be read (ENOTDIR): I/O, not "missing".
  const file = path.join(cluster.workDir, 'a-file');
  await writeFile(file, 'not a directory\n');
  const fs = await status([], { repo: path.join(file, 'repo') });
  assert.deepEqual(fs.codes, ['repository-unreachable'], fs.run.stdout);
  assert.equal(fs.run.code, 8);
});

test('a newest backup older than its schedule allows: backup-stale, exit 7', async () => {
  // Backups every 2 seconds (croner's seconds field); the one taken in before() is soon late.
  const config = await writeConfig('stale.yaml', [
    'daemon:',
    '  schedules:',
    '    full-backup: null',
    '    backup: "*/2 * * * * *"',
  ]);
  await sleep(5_000);
  const { run, codes } = await status(['--config', config]);
  assert.deepEqual(codes, ['backup-stale'], run.stdout);
  assert.equal(run.code, 7);
});

test('a failed restore verification: verification-failed, exit 7', async () => {
  const report = await verifyRestore({
    store: stream!.store,
    connection: stream!.connection,
    target: { kind: 'latest' },
    checks: [{ name: 'impossible count', sql: 'SELECT count(*) FROM ledger_accounts', max: 0 }],
    scratch: { scratchDir: cluster.workDir },
  });
  assert.equal(report.passed, false);
  await recordVerification(stream!.store, report);
  const { run, codes } = await status();
  assert.deepEqual(codes, ['verification-failed'], run.stdout);
  assert.equal(run.code, 7);
  // The verification is the only trouble; it is removed again for the tests that follow.
  for (const key of await stream!.store.list('verifications/')) await stream!.store.delete(key);
  assert.equal((await status()).run.code, 0);
});

test('a failed DR drill while the stream runs and the backup is fresh: drill-failed alone, exit 7', async () => {
  // A real drill by hand whose RTO objective no restore can meet: it restores, then fails.
  const drill = await runWarden(
    ['drill', '--db', db(), '--repo', repoDir(), '--rto', '1ms', '--rpo', '1h', '--no-encryption', '--json'],
    { cwd: cluster.workDir },
  );
  assert.equal(drill.code, 7, drill.stdout + drill.stderr);
  const report = JSON.parse(drill.stdout) as { passed: boolean; failures: string[] };
  assert.equal(report.passed, false);
  assert.ok(
    report.failures.some((f) => /RTO/.test(f)),
    report.failures.join('; '),
  );
  const { run, parsed, codes } = await status();
  assert.deepEqual(codes, ['drill-failed'], run.stdout);
  assert.equal(parsed.exitCode, 7);
  assert.equal(run.code, 7);
  // The drill's objectives are the recorded ones now; its report is removed for the tests that follow.
  assert.equal(parsed.clusters[0]!.objectives.origin, 'drill');
  for (const key of await stream!.store.list('drills/')) await stream!.store.delete(key);
  assert.equal((await status()).run.code, 0);
});

test('a stopped stream: stream-not-running, exit 7; its exposure over the objective: rpo-exceeded, exit 7', async () => {
  await stream!.stop();
  stream = undefined;
  await withClient(cluster.url(), (client) => randomTransfer(client));
  const stopped = await status();
  assert.deepEqual(stopped.codes, ['stream-not-running'], stopped.run.stdout);
  assert.equal(stopped.run.code, 7);
  // Without streaming configured, only the exposure counts: over a 1 s objective it fails.
  const config = await writeConfig('rpo.yaml', [
    'daemon:',
    '  walStreaming: false',
    '  objectives:',
    '    rpo: 1s',
  ]);
  await sleep(2_000);
  const exposed = await status(['--config', config]);
  assert.deepEqual(exposed.codes, ['rpo-exceeded'], exposed.run.stdout);
  assert.equal(exposed.run.code, 7);
  assert.equal(exposed.parsed.clusters[0]!.objectives.origin, 'config');
  assert.equal(exposed.parsed.clusters[0]!.objectives.rpoMs, 1000);
});

test('a WAL segment deleted from the archive: wal-gap, exit 5, which outranks the stopped stream', async () => {
  stream = streamInto(cluster);
  const segments: string[] = [];
  for (let i = 0; i < 3; i += 1) {
    await withClient(cluster.url(), (client) => randomTransfer(client));
    const [row] = await cluster.query<{ name: string }>(
      'SELECT pg_walfile_name(pg_current_wal_lsn()) AS name, pg_switch_wal()',
    );
    segments.push(row!.name);
  }
  await stream.waitForArchive();
  const lost = segments[1]!;
  for (let i = 0; i < 600 && !(await stream.store.stat(segmentRecordKey(1, segments[2]!))); i += 1)
    await sleep(50);
  await rm(path.join(repoDir(), segmentDataKey(1, lost)));
  await rm(path.join(repoDir(), segmentRecordKey(1, lost)));
  const gap = await status();
  assert.deepEqual(gap.codes, ['wal-gap'], gap.run.stdout);
  assert.equal(gap.run.code, 5);
  await stream.stop();
  stream = undefined;
  const both = await status();
  assert.deepEqual(both.codes, ['wal-gap', 'stream-not-running']);
  assert.equal(both.run.code, 5);
});
