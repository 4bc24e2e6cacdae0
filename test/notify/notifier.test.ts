import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { WardenEvents } from '../../src/events/warden-events.ts';
import { resolveNotificationsPlan, type NotificationsSection } from '../../src/notify/notify-config.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import type { ClusterHealth } from '../../src/notify/status-conditions.ts';
import { waitFor, sleep } from '../harness/spawned-warden.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { WebhookReceiver } from '../harness/webhook-receiver.ts';

// Secrets a payload must never carry: the database password (in an error message that should
// not have had it), the Slack URL's secret path, the PagerDuty routing key.
const DB_PASSWORD = 'pw-Zq8rT2vLm0Xc';
const SLACK_SECRET = 'T000/B000/slacksecretXYZ123';
const ROUTING_KEY = 'R0uT1nGkEy0123456789abcdefABCDEF';

const receiver = new WebhookReceiver();
let dir: string;
let counter = 0;

before(async () => {
  await receiver.up();
  dir = await tempDir('notify');
  await writeFile(path.join(dir, 'slack-url'), `${receiver.baseUrl}/slack/${SLACK_SECRET}\n`, {
    mode: 0o600,
  });
  await writeFile(path.join(dir, 'pd-key'), `${ROUTING_KEY}\n`, { mode: 0o600 });
});
after(async () => receiver.down());

/** A notifier with its own state directory and receiver paths (`/<tag>/generic`, …). */
function plan(overrides: NotificationsSection = {}, tag = `t${++counter}`) {
  return resolveNotificationsPlan(
    {
      webhooks: [
        { name: 'generic', kind: 'generic', url: `${receiver.baseUrl}/${tag}/generic` },
        { name: 'slack', kind: 'slack', urlFile: 'slack-url' },
        { name: 'pd', kind: 'pagerduty', url: `${receiver.baseUrl}/${tag}/pd`, routingKeyFile: 'pd-key' },
      ],
      stateDir: `state-${tag}`,
      retry: { initialDelay: '50ms', maxDelay: '200ms' },
      evaluateEvery: '1h',
      ...overrides,
    },
    dir,
    {},
  );
}

const at = () => new Date().toISOString();
const failedBackup = (cluster = 'main') => ({
  cluster,
  repository: '/srv/repo',
  kind: 'full' as const,
  at: at(),
  durationMs: 5,
  // An error message that (against the rules) quotes a connection URL with its password.
  error: {
    code: 'WARDEN_E_DB_UNREACHABLE',
    message: `connect to postgres://warden:${DB_PASSWORD}@db1:5432/app failed: refused`,
  },
});

test('a failed backup sends one notification per webhook in each shape, and one "resolved" after a success', async () => {
  const p = plan();
  const tag = p.webhooks[0]!.url.pathname.split('/')[1]!;
  const events = new WardenEvents();
  const notifier = new Notifier({ plan: p, clusters: ['main'] });
  await notifier.start();
  notifier.watch(events);
  const mine = () =>
    receiver.accepted().filter((r) => r.path.startsWith(`/${tag}/`) || r.path.startsWith('/slack/'));
  const slackBefore = receiver.accepted().filter((r) => r.path.startsWith('/slack/')).length;
  try {
    events.emit('backup.failed', failedBackup());
    events.emit('backup.failed', failedBackup()); // still failing: no second message
    events.emit('job.finished', {
      cluster: 'main',
      job: 'backup',
      outcome: 'failed',
      at: at(),
      durationMs: 1,
    });
    await waitFor('three firing notifications', 20_000, () => mine().length - slackBefore >= 3);
    await sleep(300);
    const generic = receiver.accepted(`/${tag}/generic`);
    const pd = receiver.accepted(`/${tag}/pd`);
    const slack = receiver
      .accepted()
      .filter((r) => r.path.startsWith('/slack/'))
      .slice(slackBefore);
    assert.equal(generic.length, 1);
    assert.equal(pd.length, 1);
    assert.equal(slack.length, 1);
    const g = generic[0]!.body;
    assert.equal(g.status, 'firing');
    assert.equal(g.key, 'main/backup-failed');
    assert.equal(g.cluster, 'main');
    assert.equal(g.condition, 'backup-failed');
    assert.equal(g.severity, 'critical');
    assert.equal((g.error as { code: string }).code, 'WARDEN_E_DB_UNREACHABLE');
    assert.equal(generic[0]!.headers['idempotency-key'], g.id);
    assert.match(String(slack[0]!.body.text), /FIRING .*main: backup failed/);
    assert.ok(Array.isArray(slack[0]!.body.blocks));
    assert.equal(pd[0]!.body.event_action, 'trigger');
    assert.equal(pd[0]!.body.routing_key, ROUTING_KEY);
    assert.equal(pd[0]!.body.dedup_key, 'warden/main/backup-failed');
    assert.equal((pd[0]!.body.payload as { severity: string }).severity, 'critical');
    assert.deepEqual(
      notifier.alerts().alerts.map((a) => a.key),
      ['main/backup-failed'],
    );

    events.emit('backup.succeeded', {
      cluster: 'main',
      kind: 'incremental',
      id: 'b2',
      at: at(),
      durationMs: 9,
      dataBytes: 1,
      storedBytes: 1,
    });
    await waitFor('three resolved notifications', 20_000, () => mine().length - slackBefore >= 6);
    assert.equal(receiver.accepted(`/${tag}/generic`)[1]!.body.status, 'resolved');
    assert.deepEqual(receiver.accepted(`/${tag}/pd`)[1]!.body, {
      routing_key: ROUTING_KEY,
      event_action: 'resolve',
      dedup_key: 'warden/main/backup-failed',
    });
    assert.match(
      String(
        receiver
          .accepted()
          .filter((r) => r.path.startsWith('/slack/'))
          .at(-1)!.body.text,
      ),
      /RESOLVED/,
    );
    assert.deepEqual(notifier.alerts().alerts, []);
    assert.deepEqual(
      notifier.alerts().webhooks.map((w) => [w.name, w.pending, w.delivered]),
      [
        ['generic', 0, 2],
        ['slack', 0, 2],
        ['pd', 0, 2],
      ],
    );

    // No secret in any payload (the routing key only in PagerDuty's own field), nor in the state file.
    for (const request of mine()) {
      assert.ok(!request.text.includes(DB_PASSWORD), request.text);
      assert.ok(!request.text.includes(SLACK_SECRET), request.text);
      if (!request.path.endsWith('/pd')) assert.ok(!request.text.includes(ROUTING_KEY), request.text);
      else assert.equal(request.text.split(ROUTING_KEY).length, 2, 'the key only as routing_key');
    }
  } finally {
    await notifier.stop();
  }
  const state = await readFile(p.stateFile, 'utf8');
  for (const secret of [DB_PASSWORD, SLACK_SECRET, ROUTING_KEY]) assert.ok(!state.includes(secret), secret);
  assert.equal((await stat(p.stateFile)).mode & 0o777, 0o600);
});

test('a receiver that refuses, then is down, then returns gets every notification once, in order', async () => {
  const p = plan();
  const tag = p.webhooks[0]!.url.pathname.split('/')[1]!;
  // Only the generic webhook here: the order of one queue is what is checked.
  const only = { ...p, webhooks: [p.webhooks[0]!] };
  const events = new WardenEvents();
  const notifier = new Notifier({ plan: only, clusters: ['main', 'other'] });
  await notifier.start();
  notifier.watch(events);
  try {
    receiver.failWith(503);
    events.emit('backup.failed', failedBackup('main'));
    events.emit('verification.finished', { cluster: 'other', at: at(), durationMs: 1, passed: false });
    events.emit('backup.succeeded', {
      cluster: 'main',
      kind: 'full',
      id: 'b',
      at: at(),
      durationMs: 1,
      dataBytes: 1,
      storedBytes: 1,
    });
    await waitFor(
      'refused attempts',
      20_000,
      () => receiver.requests.filter((r) => r.path === `/${tag}/generic`).length >= 3,
    );
    await receiver.down(); // connection refused for a while
    await sleep(500);
    assert.equal(notifier.alerts().webhooks[0]!.pending, 3);
    assert.match(notifier.alerts().webhooks[0]!.lastError!.message, /ECONNREFUSED|HTTP 503/);
    receiver.failWith(undefined);
    await receiver.up();
    await waitFor('all three delivered', 20_000, () => receiver.accepted(`/${tag}/generic`).length >= 3);
    await sleep(500);
    const got = receiver.accepted(`/${tag}/generic`).map((r) => `${r.body.status} ${r.body.key}`);
    assert.deepEqual(got, [
      'firing main/backup-failed',
      'firing other/verification-failed',
      'resolved main/backup-failed',
    ]);
    const ids = receiver.accepted(`/${tag}/generic`).map((r) => r.body.id);
    assert.equal(new Set(ids).size, 3);
    assert.equal(notifier.alerts().webhooks[0]!.pending, 0);
  } finally {
    receiver.failWith(undefined);
    await receiver.up();
    await notifier.stop();
  }
});

test('pending notifications and active conditions survive a restart of the notifier', async () => {
  const p = plan();
  const tag = p.webhooks[0]!.url.pathname.split('/')[1]!;
  const only = { ...p, webhooks: [p.webhooks[0]!] };
  const first = new Notifier({ plan: only, clusters: ['main'] });
  await first.start();
  const events = new WardenEvents();
  first.watch(events);
  receiver.failWith(503);
  try {
    events.emit('drill.finished', {
      cluster: 'main',
      at: at(),
      passed: false,
      rtoSeconds: 900,
      objectiveRtoSeconds: 600,
    });
    await waitFor('a refused attempt', 20_000, () =>
      receiver.requests.some((r) => r.path === `/${tag}/generic`),
    );
  } finally {
    await first.stop();
  }
  const saved = JSON.parse(await readFile(p.stateFile, 'utf8')) as { outbox: unknown[]; active: unknown[] };
  assert.equal(saved.outbox.length, 1);
  assert.equal(saved.active.length, 1);
  receiver.failWith(undefined);

  const second = new Notifier({ plan: only, clusters: ['main'] });
  await second.start();
  second.watch(events);
  try {
    await waitFor('the pending notification', 20_000, () => receiver.accepted(`/${tag}/generic`).length >= 1);
    assert.deepEqual(
      second.alerts().alerts.map((a) => a.key),
      ['main/drill-failed'],
    );
    events.emit('drill.finished', { cluster: 'main', at: at(), passed: true });
    await waitFor(
      'the resolved notification',
      20_000,
      () => receiver.accepted(`/${tag}/generic`).length >= 2,
    );
    await sleep(300);
    const got = receiver.accepted(`/${tag}/generic`).map((r) => `${r.body.status} ${r.body.key}`);
    assert.deepEqual(got, ['firing main/drill-failed', 'resolved main/drill-failed']);
    assert.match(
      String(receiver.accepted(`/${tag}/generic`)[0]!.body.summary),
      /RTO 900s above the objective 600s/,
    );
  } finally {
    await second.stop();
  }
});

test('status conditions fire after their thresholds and resolve when the status no longer shows them', async () => {
  const p = plan({ streamDownAfter: '2m', slotRetentionBytes: 1_000_000 });
  const tag = p.webhooks[0]!.url.pathname.split('/')[1]!;
  const only = { ...p, webhooks: [{ ...p.webhooks[0]!, minSeverity: 'critical' as const }] };
  const notifier = new Notifier({ plan: only, clusters: ['main'] });
  await notifier.start();
  const health = (over: Partial<ClusterHealth> = {}): ClusterHealth => ({
    name: 'main',
    repository: { location: '/srv/repo', reachable: true },
    walStream: { state: 'streaming', slot: { name: 'warden', retainedBytes: 10 } },
    rpoExposureSeconds: 1,
    objectives: { rpoMs: 60_000, rpo: '1m' },
    ...over,
  });
  const keys = () =>
    notifier
      .alerts()
      .alerts.map((a) => a.key)
      .sort();
  try {
    const t0 = Date.parse('2026-12-06T00:00:00Z');
    const down = {
      state: 'reconnecting',
      lastError: { code: 'WARDEN_E_DB_UNREACHABLE', message: 'refused' },
    };
    notifier.evaluate([health({ walStream: down })], new Date(t0));
    notifier.evaluate([health({ walStream: down })], new Date(t0 + 60_000));
    assert.deepEqual(keys(), [], 'down for 1m of the 2m allowed');
    notifier.evaluate(
      [
        health({
          walStream: { ...down, slot: { name: 'warden', retainedBytes: 5_000_000 } },
          rpoExposureSeconds: 130,
          repository: {
            location: '/srv/repo',
            reachable: false,
            error: { code: 'WARDEN_E_REPO_IO', message: 'EIO' },
          },
        }),
      ],
      new Date(t0 + 130_000),
    );
    assert.deepEqual(keys(), [
      'main/repository-unreachable',
      'main/rpo-exceeded',
      'main/slot-retention-high',
      'main/stream-down',
    ]);
    assert.equal(notifier.alerts().alerts.at(-1)!.severity, 'warning', 'most urgent first');
    notifier.evaluate([health()], new Date(t0 + 140_000));
    assert.deepEqual(keys(), []);
    await waitFor('3 firing and 3 resolved', 20_000, () => receiver.accepted(`/${tag}/generic`).length >= 6);
    await sleep(300);
    // minSeverity critical: the slot warning is never sent.
    const got = receiver.accepted(`/${tag}/generic`).map((r) => `${r.body.status} ${r.body.condition}`);
    assert.equal(got.length, 6);
    assert.ok(!got.some((line) => line.includes('slot-retention-high')), got.join('\n'));
    // A repository not created yet is not "unreachable".
    notifier.evaluate(
      [
        health({
          repository: {
            location: '/srv/new',
            reachable: false,
            error: { code: 'WARDEN_E_REPO_NOT_INITIALIZED', message: 'none' },
          },
        }),
      ],
      new Date(t0 + 150_000),
    );
    assert.deepEqual(keys(), []);
  } finally {
    await notifier.stop();
  }
});

test('a backup, verification or drill interrupted by a stop fires nothing; a real failure still does', async () => {
  const p = plan();
  const events = new WardenEvents();
  const notifier = new Notifier({ plan: { ...p, webhooks: [] }, clusters: ['main'] });
  await notifier.start();
  notifier.watch(events);
  try {
    const stopped = { code: 'WARDEN_E_ABORTED', message: 'backup was interrupted' };
    events.emit('backup.failed', { ...failedBackup(), error: stopped });
    events.emit('verification.finished', {
      cluster: 'main',
      at: at(),
      durationMs: 1,
      passed: false,
      error: stopped,
    });
    events.emit('drill.finished', { cluster: 'main', at: at(), passed: false, error: stopped });
    assert.deepEqual(notifier.alerts().alerts, []);
    events.emit('backup.failed', failedBackup());
    assert.deepEqual(
      notifier.alerts().alerts.map((a) => a.key),
      ['main/backup-failed'],
    );
  } finally {
    await notifier.stop();
  }
});

test('a notification the receiver refuses for good (4xx) is dropped without blocking the next', async () => {
  const p = plan();
  const tag = p.webhooks[0]!.url.pathname.split('/')[1]!;
  const only = { ...p, webhooks: [p.webhooks[0]!] };
  const events = new WardenEvents();
  const notifier = new Notifier({ plan: only, clusters: ['main'] });
  await notifier.start();
  notifier.watch(events);
  try {
    receiver.failWith(400);
    events.emit('job.finished', {
      cluster: 'main',
      job: 'retention',
      outcome: 'failed',
      at: at(),
      durationMs: 1,
      error: { code: 'WARDEN_E_REPO_IO', message: 'EIO' },
    });
    await waitFor('the refused one', 20_000, () => notifier.alerts().webhooks[0]!.dropped === 1);
    receiver.failWith(undefined);
    events.emit('job.finished', {
      cluster: 'main',
      job: 'retention',
      outcome: 'succeeded',
      at: at(),
      durationMs: 1,
    });
    await waitFor('the next one', 20_000, () => receiver.accepted(`/${tag}/generic`).length === 1);
    assert.equal(receiver.accepted(`/${tag}/generic`)[0]!.body.key, 'main/job-failed/retention');
    assert.equal(
      receiver.requests.filter((r) => r.path === `/${tag}/generic`).length,
      2,
      'the 400 was not retried',
    );
  } finally {
    receiver.failWith(undefined);
    await notifier.stop();
  }
});

test('an unreadable state file is moved aside and the notifier starts empty', async () => {
  const p = plan();
  const first = new Notifier({ plan: p, clusters: ['main'] });
  await first.start();
  await first.stop();
  await writeFile(p.stateFile, '{"version":1,"nextSeq":"x"}');
  const second = new Notifier({ plan: p, clusters: ['main'] });
  await second.start();
  try {
    assert.deepEqual(second.alerts().alerts, []);
    const files = await import('node:fs/promises').then((fs) => fs.readdir(path.dirname(p.stateFile)));
    assert.ok(
      files.some((f) => f.startsWith('notifications.json.unreadable-')),
      files.join(','),
    );
  } finally {
    await second.stop();
  }
});
