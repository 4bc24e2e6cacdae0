import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveDaemonPlan, type DaemonInputs } from '../../src/daemon/daemon-config.ts';
import { objectiveWarnings } from '../../src/daemon/objectives-check.ts';
import { isWardenError } from '../../src/errors.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';
import { parseDuration } from '../../src/util/duration.ts';
import { Schedule } from '../../src/scheduler/schedule.ts';

function inputs(overrides: Partial<DaemonInputs> = {}): DaemonInputs {
  return {
    baseDir: '/tmp',
    defaultCluster: { repository: { path: '/tmp/repo' }, slot: 'warden' },
    retention: DEFAULT_RETENTION_POLICY,
    flags: {},
    env: {},
    ...overrides,
  };
}

function assertConfigError(fn: () => unknown, field: string) {
  assert.throws(fn, (error) => {
    assert.ok(isWardenError(error, 'WARDEN_E_CONFIG_INVALID'), String(error));
    assert.equal(error.details.field, field);
    return true;
  });
}

test('profiles carry the requirement objectives and schedules (UTC by default)', () => {
  const prod = resolveDaemonPlan(inputs({ flags: { profile: 'prod' } })).clusters[0]!;
  assert.equal(prod.objectives.rtoMs, 4 * 3_600_000);
  assert.equal(prod.objectives.rpoMs, 24 * 3_600_000);
  assert.equal(prod.schedules['full-backup']!.pattern, '0 2 * * 0');
  assert.equal(
    prod.schedules['full-backup']!.next(new Date('2026-11-18T00:00:00Z'))!.toISOString(),
    '2026-11-22T02:00:00.000Z',
  );
  assert.equal(
    prod.schedules.backup!.next(new Date('2026-11-18T06:30:00Z'))!.toISOString(),
    '2026-11-18T12:00:00.000Z',
  );
  const dev = resolveDaemonPlan(inputs({ env: { WARDEN_PROFILE: 'dev' } })).clusters[0]!;
  assert.equal(dev.objectives.rpoMs, 48 * 3_600_000);
  const uat = resolveDaemonPlan(inputs({ section: { profile: 'uat' } })).clusters[0]!;
  assert.equal(uat.objectives.rtoMs, 8 * 3_600_000);
});

test('per-cluster values override the daemon section and the profile; flags override both', () => {
  const plan = resolveDaemonPlan(
    inputs({
      section: {
        profile: 'prod',
        timezone: 'Europe/Berlin',
        objectives: { rpo: '1h' },
        clusters: [
          {
            name: 'payments',
            url: 'postgres://u:p@127.0.0.1:5432/db',
            objectives: { rto: '15m' },
            schedules: { drill: null },
          },
          {
            name: 'ledger',
            url: 'postgres://u:p@127.0.0.1:5433/db',
            repository: 'ledger-repo',
            timezone: 'UTC',
          },
        ],
      },
    }),
  );
  const [payments, ledger] = plan.clusters;
  assert.equal(payments!.objectives.rtoMs, 15 * 60_000);
  assert.equal(payments!.objectives.rpoMs, 3_600_000);
  assert.equal(payments!.schedules.drill, null);
  assert.equal(payments!.timezone, 'Europe/Berlin');
  assert.equal(ledger!.repository.path, '/tmp/ledger-repo');
  assert.equal(payments!.repository.path, '/tmp/repo/payments');
  assert.equal(ledger!.timezone, 'UTC');
  const flagged = resolveDaemonPlan(
    inputs({ section: { objectives: { rto: '2h' } }, flags: { rto: '1ms', rpo: '30s' } }),
  );
  assert.equal(flagged.clusters[0]!.objectives.rtoMs, 1);
  assert.equal(flagged.clusters[0]!.objectives.rpoMs, 30_000);
});

test('bad input names the field: cron expression, time zone, profile, duration', () => {
  assertConfigError(
    () => resolveDaemonPlan(inputs({ section: { schedules: { backup: '61 * * * *' } } })),
    'daemon.schedules.backup',
  );
  assertConfigError(
    () => resolveDaemonPlan(inputs({ section: { timezone: 'Mars/Olympus' } })),
    'daemon.timezone',
  );
  assertConfigError(() => resolveDaemonPlan(inputs({ flags: { profile: 'staging' } })), '--profile');
  assertConfigError(() => resolveDaemonPlan(inputs({ section: { profile: 'qa' } })), 'daemon.profile');
  assertConfigError(() => resolveDaemonPlan(inputs({ flags: { rto: 'soon' } })), '--rto');
  assertConfigError(
    () =>
      resolveDaemonPlan(
        inputs({
          section: { clusters: [{ name: 'a', url: 'postgres://u@h/db', schedules: { drill: 'every day' } }] },
        }),
      ),
    'daemon.clusters.0.schedules.drill',
  );
  assertConfigError(() => new Schedule('0 2 * * *', 'Nowhere/Land', 'x.y'), 'x.y');
});

test('objectives the schedule cannot meet are warned about at startup', () => {
  const plan = resolveDaemonPlan(
    inputs({
      section: {
        walStreaming: false,
        objectives: { rpo: '1h' },
        schedules: { backup: null, 'full-backup': '0 2 * * *', drill: null },
      },
    }),
  ).clusters[0]!;
  const warnings = objectiveWarnings(plan, new Date('2026-11-22T00:00:00Z'));
  assert.ok(
    warnings.some((w) => w.includes('RPO 1h cannot be met') && w.includes('1d')),
    warnings.join('\n'),
  );
  assert.ok(warnings.some((w) => w.includes('no DR drill')));
  const fine = resolveDaemonPlan(inputs()).clusters[0]!;
  assert.deepEqual(objectiveWarnings(fine), []);
});

test('durations: units, combinations, bare seconds', () => {
  assert.equal(parseDuration('15m', 'f'), 900_000);
  assert.equal(parseDuration('4h30m', 'f'), 16_200_000);
  assert.equal(parseDuration('1ms', 'f'), 1);
  assert.equal(parseDuration(90, 'f'), 90_000);
  assert.throws(() => parseDuration('1 fortnight', 'f'));
});

test('several clusters on one S3 repository each get a sub-prefix; a cluster directory keeps the group', () => {
  const s3 = { bucket: 'backups', prefix: 'prod', region: 'us-east-1', forcePathStyle: false };
  const group = { name: 'warden-readers', gid: 1234 };
  const section = {
    clusters: [
      { name: 'payments', url: 'postgres://u:p@127.0.0.1:5432/db' },
      { name: 'ledger', url: 'postgres://u:p@127.0.0.1:5433/db', repository: 'ledger-repo' },
    ],
  };
  const onS3 = resolveDaemonPlan(
    inputs({ section, defaultCluster: { repository: { path: 's3://backups/prod', s3 }, slot: 'warden' } }),
  );
  const payments = onS3.clusters[0]!.repository;
  assert.equal(payments.path, 's3://backups/prod/payments');
  assert.deepEqual(payments.s3, { ...s3, prefix: 'prod/payments' });
  // A cluster entry's own repository is a directory.
  assert.deepEqual(onS3.clusters[1]!.repository, { path: '/tmp/ledger-repo' });

  const onDisk = resolveDaemonPlan(
    inputs({ section, defaultCluster: { repository: { path: '/tmp/repo', group }, slot: 'warden' } }),
  );
  assert.deepEqual(onDisk.clusters[0]!.repository, { path: '/tmp/repo/payments', group });
  assert.deepEqual(onDisk.clusters[1]!.repository, { path: '/tmp/ledger-repo', group });
  // One cluster: the configured repository itself.
  const single = resolveDaemonPlan(inputs({ defaultCluster: { repository: { path: '/tmp/repo', group } } }));
  assert.deepEqual(single.clusters[0]!.repository, { path: '/tmp/repo', group });
});
