import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { isWardenError } from '../../src/errors.ts';
import { resolveNotificationsPlan, type NotificationsSection } from '../../src/notify/notify-config.ts';
import { tempDir } from '../harness/temp-dir.ts';

let dir: string;
before(async () => {
  dir = await tempDir('notify-config');
  await writeFile(path.join(dir, 'slack-url'), 'https://hooks.slack.com/services/T0/B0/secretpart\n');
  await writeFile(path.join(dir, 'pd-key'), 'short\n');
});

function refused(section: NotificationsSection, field: string, code = 'WARDEN_E_CONFIG_INVALID', env = {}) {
  assert.throws(
    () => resolveNotificationsPlan(section, dir, env),
    (error: unknown) => {
      assert.ok(isWardenError(error), String(error));
      assert.equal(error.code, code);
      assert.equal(error.details.field, field);
      assert.ok(error.message.startsWith(`${field}:`), error.message);
      return true;
    },
  );
}

test('webhook settings are checked, each error naming its field', () => {
  refused(
    { webhooks: [{ name: 's', kind: 'slack', url: 'https://hooks.slack.com/x' }] },
    'daemon.notifications.webhooks.0.url',
  );
  refused(
    { webhooks: [{ name: 'g', kind: 'generic', url: 'http://alerts.example.com/hook' }] },
    'daemon.notifications.webhooks.0.url',
  );
  refused(
    { webhooks: [{ name: 'g', kind: 'generic', url: 'https://u:p@alerts.example.com/' }] },
    'daemon.notifications.webhooks.0.url',
  );
  refused({ webhooks: [{ name: 'g', kind: 'generic' }] }, 'daemon.notifications.webhooks.0.url');
  refused(
    {
      webhooks: [
        { name: 'g', kind: 'generic', url: 'https://a.example.com/' },
        { name: 'g', kind: 'generic', url: 'https://b.example.com/' },
      ],
    },
    'daemon.notifications.webhooks.1.name',
  );
  refused({ webhooks: [{ name: 'p', kind: 'pagerduty' }] }, 'daemon.notifications.webhooks.0.routingKeyFile');
  refused(
    { webhooks: [{ name: 'p', kind: 'pagerduty', routingKeyFile: 'pd-key' }] },
    'daemon.notifications.webhooks.0.routingKeyFile',
  );
  refused(
    { webhooks: [{ name: 's', kind: 'slack', urlEnv: 'NO_SUCH_VAR' }] },
    'daemon.notifications.webhooks.0.urlEnv',
    'WARDEN_E_SECRET_UNAVAILABLE',
  );
  refused({ streamDownAfter: 'soon' }, 'daemon.notifications.streamDownAfter');
});

test('a secret read from a file never appears in an error message', () => {
  try {
    resolveNotificationsPlan({ webhooks: [{ name: 's', kind: 'slack', urlFile: 'pd-key' }] }, dir, {});
    assert.fail('a URL that does not parse is refused');
  } catch (error) {
    assert.ok(isWardenError(error, 'WARDEN_E_CONFIG_INVALID'));
    assert.ok(!(error as Error).message.includes('short'), (error as Error).message);
  }
});

test('defaults and a valid plan: loopback http, Slack URL from a file, PagerDuty key from the environment', () => {
  const plan = resolveNotificationsPlan(
    {
      webhooks: [
        { name: 'local', kind: 'generic', url: 'http://127.0.0.1:9/hook' },
        { name: 'slack', kind: 'slack', urlFile: 'slack-url', minSeverity: 'critical' },
        { name: 'pd', kind: 'pagerduty', routingKeyEnv: 'PD_KEY' },
      ],
    },
    dir,
    { PD_KEY: 'abcdefghij0123456789ABCDEF012345' },
  );
  assert.equal(plan.webhooks[1]!.url.hostname, 'hooks.slack.com');
  assert.equal(plan.webhooks[1]!.minSeverity, 'critical');
  assert.equal(plan.webhooks[2]!.url.href, 'https://events.pagerduty.com/v2/enqueue');
  assert.equal(plan.webhooks[0]!.minSeverity, 'warning');
  assert.equal(plan.streamDownAfterMs, 300_000);
  assert.equal(plan.stateFile, path.join(dir, '.warden', 'notifications.json'));
});

test('warden.yaml: an unknown notification field is named by its path', async () => {
  await writeFile(
    path.join(dir, 'warden.yaml'),
    [
      'daemon:',
      '  notifications:',
      '    webhooks:',
      '      - name: a',
      '        kind: generic',
      '        urll: https://x.example/',
      '',
    ].join('\n'),
  );
  assert.throws(
    () => loadConfig({ flags: {}, env: {}, cwd: dir }),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_CONFIG_INVALID') &&
      error.message.includes('daemon.notifications.webhooks.0'),
  );
});
