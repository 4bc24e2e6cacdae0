import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveDaemonPlan, type DaemonSection } from '../../src/daemon/daemon-config.ts';
import { isWardenError } from '../../src/errors.ts';
import { WardenEvents } from '../../src/events/warden-events.ts';
import { watchEvents } from '../../src/notify/event-conditions.ts';
import { storageClassFor } from '../../src/repository/storage-class-rules.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';

const DAY = 86_400_000;

function plan(section: DaemonSection, repository: { path: string; s3?: never } = { path: '/srv/repo' }) {
  return resolveDaemonPlan({
    section,
    baseDir: '/etc/warden',
    defaultCluster: { repository },
    retention: DEFAULT_RETENTION_POLICY,
    flags: {},
    env: {},
  });
}

const refused = (field: string) => (error: unknown) => {
  assert.ok(isWardenError(error, 'WARDEN_E_CONFIG_INVALID'), String(error));
  assert.equal(error.details?.field, field);
  return true;
};

test('copyTo resolves a directory (relative to the config file) and a bucket with its own credentials', () => {
  const [cluster] = plan({
    copyTo: [
      { repository: 'second' },
      {
        name: 'dr',
        repository: 's3://backups-dr/db1',
        interval: '30s',
        s3: { region: 'eu-west-1', accessKeyId: 'AKIA', secretAccessKey: 'secret' },
        storageClasses: [
          { olderThan: '180d', class: 'GLACIER' },
          { olderThan: '30d', class: 'STANDARD_IA' },
        ],
      },
    ],
  }).clusters;
  const [second, dr] = cluster!.copyTo;
  assert.deepEqual(second, {
    name: '/etc/warden/second',
    location: { path: '/etc/warden/second' },
    intervalMs: 15_000,
    storageClasses: [],
  });
  assert.equal(dr!.name, 'dr');
  assert.equal(dr!.location.path, 's3://backups-dr/db1');
  assert.equal(dr!.location.s3?.region, 'eu-west-1');
  assert.deepEqual(dr!.location.s3?.credentials, { accessKeyId: 'AKIA', secretAccessKey: 'secret' });
  assert.equal(dr!.intervalMs, 30_000);
  assert.deepEqual(
    dr!.storageClasses.map((r) => r.storageClass),
    ['STANDARD_IA', 'GLACIER'],
    'youngest rule first',
  );
});

test('copyTo refuses the cluster’s own repository, a name used twice, and classes on a directory', () => {
  assert.throws(() => plan({ copyTo: [{ repository: '/srv/repo' }] }), refused('daemon.copyTo.0.repository'));
  assert.throws(
    () =>
      plan({
        copyTo: [
          { name: 'a', repository: '/x' },
          { name: 'a', repository: '/y' },
        ],
      }),
    refused('daemon.copyTo.1.name'),
  );
  assert.throws(
    () => plan({ copyTo: [{ repository: '/x', storageClasses: [{ olderThan: '1d', class: 'GLACIER' }] }] }),
    refused('daemon.copyTo.0.storageClasses'),
  );
  assert.throws(
    () => plan({ storageClasses: [{ olderThan: '1d', class: 'GLACIER' }] }),
    refused('daemon.storageClasses'),
  );
  assert.throws(
    () =>
      plan({
        copyTo: [
          {
            repository: 's3://b-b-b/x',
            storageClasses: [
              { olderThan: '1d', class: 'GLACIER' },
              { olderThan: '24h', class: 'STANDARD_IA' },
            ],
          },
        ],
      }),
    refused('daemon.copyTo.0.storageClasses'),
  );
});

test('an object takes the class of the oldest rule its age reaches; an unknown age takes none', () => {
  const rules = [
    { olderThanMs: 30 * DAY, storageClass: 'STANDARD_IA' },
    { olderThanMs: 180 * DAY, storageClass: 'GLACIER' },
  ];
  assert.equal(storageClassFor(29 * DAY, rules), undefined);
  assert.equal(storageClassFor(30 * DAY, rules), 'STANDARD_IA');
  assert.equal(storageClassFor(200 * DAY, rules), 'GLACIER');
  assert.equal(storageClassFor(undefined, rules), undefined);
});

test('copy.failed raises the copy-failed condition for its target; copy.caught-up resolves it', () => {
  const events = new WardenEvents();
  const raised: string[] = [];
  const cleared: string[] = [];
  watchEvents(events, {
    raise: (input) => raised.push(`${input.cluster}/${input.condition}/${input.subject}`),
    clear: (key) => cleared.push(`${key.cluster}/${key.condition}/${key.subject}`),
  });
  const subject = { cluster: 'main', repository: '/srv/repo', target: 'dr' };
  const at = new Date().toISOString();
  events.emit('copy.failed', {
    ...subject,
    at,
    attempt: 1,
    error: { code: 'WARDEN_E_REPO_IO', message: 'x' },
  });
  assert.deepEqual(raised, ['main/copy-failed/dr']);
  events.emit('copy.caught-up', { ...subject, at, failedAttempts: 3, lagSeconds: 12 });
  assert.deepEqual(cleared, ['main/copy-failed/dr']);
});
