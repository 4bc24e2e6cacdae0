import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { tokenDigest } from '../../src/daemon/http-config.ts';
import { WardenEvents } from '../../src/events/warden-events.ts';
import { alertsRoute } from '../../src/notify/alerts-route.ts';
import { resolveNotificationsPlan } from '../../src/notify/notify-config.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import { createStatusApp } from '../../src/server/status-app.ts';

const VIEWER_TOKEN = 'viewer-token-for-the-alerts-route-0123456789';

test('GET /api/alerts lists the active conditions to viewers only, most urgent first', async () => {
  // No webhooks: the conditions are kept in memory only, and still listed.
  const notifier = new Notifier({
    plan: resolveNotificationsPlan({}, '/nonexistent', {}),
    clusters: ['main'],
  });
  await notifier.start();
  const events = new WardenEvents();
  notifier.watch(events);
  const app = createStatusApp(
    { status: () => Promise.reject(new Error('not used')) },
    {
      http: {
        host: '127.0.0.1',
        allowedHosts: [],
        tokens: [{ name: 'dash', role: 'viewer', sha256: tokenDigest(VIEWER_TOKEN) }],
        sessionTtlMs: 3_600_000,
      },
      routes: [alertsRoute(notifier)],
    },
  );
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/alerts`;
  try {
    events.emit('drill.finished', { cluster: 'main', at: '2026-12-06T01:00:00.000Z', passed: false });
    events.emit('verification.finished', {
      cluster: 'main',
      at: '2026-12-06T02:00:00.000Z',
      durationMs: 3,
      passed: false,
      backupId: 'b1',
      error: { code: 'WARDEN_E_RESTORE_CHECK_FAILED', message: 'checks failed: sql' },
    });
    assert.equal((await fetch(url)).status, 401);
    const response = await fetch(url, { headers: { authorization: `Bearer ${VIEWER_TOKEN}` } });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { alerts: Array<Record<string, unknown>>; webhooks: unknown[] };
    assert.deepEqual(
      body.alerts.map((a) => [a.key, a.severity]),
      [
        ['main/verification-failed', 'critical'],
        ['main/drill-failed', 'warning'],
      ],
    );
    assert.deepEqual(Object.keys(body.alerts[0]!).sort(), [
      'cluster',
      'condition',
      'error',
      'key',
      'severity',
      'since',
      'summary',
      'title',
      'updatedAt',
    ]);
    assert.deepEqual(body.webhooks, []);
  } finally {
    server.close();
    await notifier.stop();
  }
});
