import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { listAudit } from '../../src/audit/audit-log.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { runWarden } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { SpawnedWardens, waitFor, type SpawnedWarden } from '../harness/spawned-warden.ts';
import {
  documentedMetrics,
  families,
  foreignFamilies,
  parseSamples,
  valueOf,
  type Sample,
} from './exposition.ts';

/**
 * A real `warden serve` (a child process, encrypted repository, password in PGPASSWORD) whose
 * yearly jobs all catch up at start: a full backup, a logical dump, a verification and a drill.
 * Once the drill ran, `GET /metrics` holds every documented metric with values that agree with
 * `/api/status`, passes `promtool check metrics`, and shows neither the password nor the key.
 */

const YEARLY = '0 0 1 1 *';
let cluster: TestCluster;
let serve: SpawnedWarden;
let base: string;
let identitySecret: string;
const wardens = new SpawnedWardens();
const startedAt = Date.now() / 1000;
let text: string;
let samples: Sample[];

before(async () => {
  cluster = await startCluster();
  await cluster.query('CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g');
  const dir = cluster.workDir;
  const keygen = await runWarden(['repo', 'keygen', '-o', path.join(dir, 'key.txt')], { cwd: dir });
  assert.equal(keygen.code, 0, keygen.stderr);
  const recipient = /Public key: (age1\S+)/.exec(keygen.stderr)![1]!;
  identitySecret = /AGE-SECRET-KEY-\S+/.exec(await readFile(path.join(dir, 'key.txt'), 'utf8'))![0];
  await writeFile(
    path.join(dir, 'warden.yaml'),
    [
      'repository:',
      '  compression: zstd',
      '  encryption:',
      `    recipients: ["${recipient}"]`,
      '    identityFile: key.txt',
      'retention:',
      '  recoveryWindow: 7d',
      'daemon:',
      '  profile: dev',
      '  schedules:',
      `    full-backup: "${YEARLY}"`,
      '    backup: null',
      `    logical-dump: "${YEARLY}"`,
      '    retention: null',
      `    verification: "${YEARLY}"`,
      `    drill: "${YEARLY}"`,
      // The drill runs a (trivial) migration step, so its metric has a sample too.
      '  drillMigration: { command: [sh, -c, "exit 0"] }',
      // An off-site copy to a second directory, so the copy metrics have samples too.
      '  copyTo:',
      '    - { name: offsite, repository: offsite-repo }',
      '',
    ].join('\n'),
  );
  serve = wardens.spawn(
    [
      'serve',
      '--config',
      'warden.yaml',
      '--db',
      `postgres://postgres@127.0.0.1:${cluster.port}/postgres?sslmode=disable`,
      '--repo',
      path.join(dir, 'repo'),
      '--http-port',
      '0',
    ],
    { cwd: dir, env: { ...process.env, PGPASSWORD: cluster.password } },
  );
  await waitFor('the metrics address', 60_000, () => /metrics: http:\/\/\S+\/metrics/.test(serve.output()));
  base = /metrics: (http:\/\/\S+)\/metrics/.exec(serve.output())![1]!;
  // The drill runs last; the snapshot collected after it has every repository fact.
  await waitFor(
    'the drill and a snapshot after it',
    540_000,
    async () => {
      if (serve.child.exitCode !== null) assert.fail(`warden serve exited:\n${serve.output()}`);
      const current = parseSamples(await (await fetch(`${base}/metrics`)).text());
      const drill = current.find(
        (s) => s.name === 'warden_job_last_run_timestamp_seconds' && s.labels.job === 'drill',
      );
      const snapshot = current.find((s) => s.name === 'warden_metrics_snapshot_timestamp_seconds');
      return drill !== undefined && snapshot !== undefined && snapshot.value > drill.value;
    },
    500,
  );
  text = await (await fetch(`${base}/metrics`)).text();
  samples = parseSamples(text);
});

after(async () => {
  await wardens.killAll();
  await cluster?.stop();
});

test('every documented metric is served, and nothing undocumented', () => {
  const output = new Map([...families(text)].filter(([name]) => name.startsWith('warden_')));
  assert.deepEqual([...output].sort(), [...documentedMetrics()].sort());
  for (const name of documentedMetrics().keys())
    assert.ok(
      samples.some((s) => s.name === name),
      `${name} has a sample after a backup, a verification and a drill`,
    );
  for (const name of foreignFamilies(text)) assert.match(name, /^(process|nodejs)_/);
});

test('the values are sensible and agree with /api/status', async () => {
  const now = Date.now() / 1000;
  const status = (await (await fetch(`${base}/api/status`)).json()) as {
    clusters: Array<{
      name: string;
      repository: { location: string };
      objectives: { rtoMs: number; rpoMs: number };
      lastDrill: { passed: boolean; rtoMs: number };
      lastVerification: { passed: boolean };
    }>;
  };
  const c = status.clusters[0]!;
  const labels = { cluster: c.name, repository: c.repository.location };
  const v = (name: string, extra: Record<string, string> = {}) =>
    valueOf(samples, name, { ...labels, ...extra });
  const recent = (value: number, what: string) =>
    assert.ok(value >= startedAt - 5 && value <= now + 1, `${what}: ${value} not within the test's run`);
  assert.equal(v('warden_up'), 1);
  for (const kind of ['full', 'dump']) {
    recent(v('warden_backup_last_success_timestamp_seconds', { kind }), `${kind} backup`);
    assert.ok(v('warden_backup_last_duration_seconds', { kind }) > 0);
    assert.ok(v('warden_backup_last_size_bytes', { kind, stage: 'data' }) > 0);
    assert.ok(v('warden_backup_last_size_bytes', { kind, stage: 'stored' }) > 0);
  }
  // 20,000 rows of md5 text: the data directory is megabytes, the zstd copy smaller.
  assert.ok(
    v('warden_backup_last_size_bytes', { kind: 'full', stage: 'stored' }) <
      v('warden_backup_last_size_bytes', { kind: 'full', stage: 'data' }),
  );
  for (const kind of ['full', 'incremental', 'dump'])
    assert.equal(v('warden_backup_failures_total', { kind }), 0);
  assert.equal(v('warden_wal_stream_up'), 1);
  assert.ok(v('warden_wal_flush_lag_bytes') >= 0);
  assert.ok(v('warden_wal_flush_lag_seconds') >= 0);
  assert.ok(v('warden_rpo_exposure_seconds') >= 0);
  const start = v('warden_restorable_window_start_timestamp_seconds');
  const end = v('warden_restorable_window_end_timestamp_seconds');
  recent(start, 'window start');
  recent(end, 'window end');
  assert.ok(start <= end, `window ${start}..${end}`);
  assert.equal(v('warden_restorable_window_gaps'), 0);
  assert.equal(v('warden_retention_recovery_window_seconds'), 7 * 86_400);
  assert.equal(v('warden_verification_passed'), c.lastVerification.passed ? 1 : 0);
  assert.equal(v('warden_verification_passed'), 1);
  recent(v('warden_verification_last_success_timestamp_seconds'), 'verification');
  recent(v('warden_drill_last_timestamp_seconds'), 'drill');
  assert.equal(v('warden_drill_passed'), c.lastDrill.passed ? 1 : 0);
  assert.equal(v('warden_drill_rto_seconds'), c.lastDrill.rtoMs / 1000);
  assert.ok(v('warden_drill_rpo_seconds') >= 0);
  assert.equal(v('warden_drill_migration_passed'), 1);
  assert.equal(v('warden_objective_rto_seconds'), c.objectives.rtoMs / 1000);
  assert.equal(v('warden_objective_rpo_seconds'), c.objectives.rpoMs / 1000);
  assert.equal(v('warden_objective_rto_seconds'), 86_400, 'dev profile: 24h');
  assert.ok(
    v('warden_repository_size_bytes') >
      v('warden_backup_last_size_bytes', { kind: 'full', stage: 'stored' }) +
        v('warden_backup_last_size_bytes', { kind: 'dump', stage: 'stored' }),
    'the repository holds the backup, the dump and WAL',
  );
  assert.equal(v('warden_repository_reachable'), 1);
  assert.ok(v('warden_slot_retained_wal_bytes') >= 0);
  for (const job of ['full-backup', 'logical-dump', 'verification', 'drill'])
    recent(v('warden_job_last_run_timestamp_seconds', { job, outcome: 'succeeded' }), `job ${job}`);
  recent(v('warden_metrics_snapshot_timestamp_seconds'), 'snapshot');
  assert.ok(valueOf(samples, 'process_resident_memory_bytes') > 0);
});

test('promtool check metrics passes on the output', async () => {
  const result = await new Promise<{ code: number; output: string }>((resolve) => {
    const child = execFile('promtool', ['check', 'metrics'], (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
    );
    child.stdin!.end(text);
  });
  assert.equal(result.code, 0, result.output);
});

test('neither the database password nor the encryption key appears anywhere in /metrics', () => {
  assert.ok(cluster.password.length >= 16 && identitySecret.length > 20);
  for (const secret of [cluster.password, identitySecret, identitySecret.toLowerCase()])
    assert.ok(!text.includes(secret), 'a secret in the metrics output');
  assert.ok(!text.includes('AGE-SECRET-KEY'), 'no key material of any kind');
});

test("the daemon's jobs are recorded in the repository's audit log", async () => {
  const repository = await Repository.open(new FsObjectStore(path.join(cluster.workDir, 'repo')));
  const wanted = ['daemon full-backup', 'daemon logical-dump', 'daemon verification', 'daemon drill'];
  await waitFor('the audit records of the jobs', 60_000, async () => {
    const actions = new Set((await listAudit(repository)).map((r) => `${r.action} ${r.outcome}`));
    return wanted.every((action) => actions.has(`${action} succeeded`));
  });
});
