import assert from 'node:assert/strict';
import http from 'node:http';
import { after, test } from 'node:test';
import { resolveDashboardPlan } from '../../src/daemon/dashboard-config.ts';
import { tokenDigest, type HttpPlan } from '../../src/daemon/http-config.ts';
import { FINDING_PROTECTION, protectionOf } from '../../src/daemon/protection.ts';
import { FINDINGS, type FindingCode } from '../../src/daemon/status-finding-codes.ts';
import { StatusHistory } from '../../src/daemon/status-history.ts';
import type { DaemonStatus } from '../../src/daemon/status.ts';
import { isWardenError } from '../../src/errors.ts';
import type { DashboardSource } from '../../src/server/dashboard-routes.ts';
import { createStatusApp } from '../../src/server/status-app.ts';
import { startAlertmanager } from '../harness/alertmanager-process.ts';
import { waitFor } from '../harness/spawned-warden.ts';

/**
 * The dashboard's side of the HTTP API, in-process: its page and assets, the routes it reads,
 * their access rules, the history ring, and the Alertmanager relay against hostile answers
 * (local servers that misbehave on purpose) and a real Alertmanager.
 */

const TOKEN = 'dashboard-api-test-token-0123456789abcdef';
const servers: http.Server[] = [];
after(() => {
  for (const server of servers) server.close();
});

async function listen(listener: http.RequestListener): Promise<string> {
  const server = http.createServer(listener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

function daemonStatus(lag: number): DaemonStatus {
  return {
    daemon: { startedAt: '2026-01-01T00:00:00.000Z', warnings: [] },
    clusters: [
      {
        name: 'main',
        protection: 'protected',
        walStream: { state: 'streaming', lagBytes: lag },
        rpoExposureSeconds: lag / 10,
      } as unknown as DaemonStatus['clusters'][number],
    ],
  };
}

async function dashboardApp(options: { tokens?: boolean; alertmanagerUrl?: string } = {}): Promise<string> {
  const history = new StatusHistory(1000, 5000);
  history.record(daemonStatus(100));
  const dashboard: DashboardSource = {
    history: () => history.snapshot(),
    catalog: async () => ({ clusters: [] }),
    ...(options.alertmanagerUrl ? { alertmanagerUrl: options.alertmanagerUrl } : {}),
  };
  const plan: Pick<HttpPlan, 'host' | 'allowedHosts' | 'tokens' | 'sessionTtlMs'> = {
    host: '127.0.0.1',
    allowedHosts: [],
    tokens: options.tokens ? [{ name: 'ops', role: 'viewer', sha256: tokenDigest(TOKEN) }] : [],
    sessionTtlMs: 3_600_000,
  };
  return listen(createStatusApp({ status: async () => daemonStatus(0) }, { http: plan, dashboard }));
}

test('the page and its assets are served with a strict CSP; HEAD sends no body; unknown assets are 404', async () => {
  const base = await dashboardApp({ tokens: true });
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.match(page.headers.get('content-security-policy') ?? '', /^default-src 'none'; script-src 'self';/);
  assert.match(await page.text(), /<script type="module" src="\/assets\/dashboard.js"><\/script>/);
  for (const file of ['dashboard.js', 'dom.js', 'charts.js']) {
    const script = await fetch(`${base}/assets/${file}`);
    assert.equal(script.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.doesNotMatch(await script.text(), /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
  }
  const head = await fetch(`${base}/assets/dashboard.css`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
  assert.equal((await fetch(`${base}/assets/other.js`)).status, 404);
  assert.equal((await fetch(`${base}/assets/../../package.json`)).status, 404);
});

test('/api/identity says whether the caller is signed in; the data routes need a viewer', async () => {
  const base = await dashboardApp({ tokens: true });
  assert.deepEqual(await (await fetch(`${base}/api/identity`)).json(), { signedIn: false });
  const bearer = { authorization: `Bearer ${TOKEN}` };
  assert.deepEqual(await (await fetch(`${base}/api/identity`, { headers: bearer })).json(), {
    signedIn: true,
    name: 'ops',
    role: 'viewer',
    via: 'token',
  });
  for (const route of ['/api/history', '/api/catalog', '/api/alertmanager/alerts']) {
    assert.equal((await fetch(`${base}${route}`)).status, 401, route);
    assert.equal((await fetch(`${base}${route}`, { headers: bearer })).status, 200, route);
  }
  const open = await dashboardApp();
  assert.deepEqual(await (await fetch(`${open}/api/identity`)).json(), {
    signedIn: true,
    name: 'anonymous',
    role: 'viewer',
    via: 'anonymous',
  });
  const history = (await (await fetch(`${open}/api/history`)).json()) as {
    samples: Array<{ clusters: Array<{ lagBytes: number }> }>;
  };
  assert.equal(history.samples[0]!.clusters[0]!.lagBytes, 100);
  assert.deepEqual(await (await fetch(`${open}/api/alertmanager/alerts`)).json(), {
    configured: false,
    alerts: [],
  });
});

test('the history keeps the newest samples of its window, oldest first, in bounded memory', () => {
  const history = new StatusHistory(1000, 5000);
  assert.equal(history.capacity, 6);
  for (let i = 0; i < 20; i += 1) history.record(daemonStatus(i), new Date(Date.UTC(2026, 0, 1, 0, 0, i)));
  const { samples } = history.snapshot();
  assert.deepEqual(
    samples.map((s) => s.clusters[0]!.lagBytes),
    [14, 15, 16, 17, 18, 19],
  );
  assert.equal(samples[0]!.at, '2026-01-01T00:00:14.000Z');
  assert.equal(samples[0]!.clusters[0]!.rpoExposureSeconds, 1.4);
});

test('daemon.dashboard is validated: interval, window, and an Alertmanager URL without credentials', () => {
  assert.deepEqual(resolveDashboardPlan(undefined), {
    historyIntervalMs: 30_000,
    historyWindowMs: 21_600_000,
  });
  assert.equal(
    resolveDashboardPlan({ alertmanagerUrl: 'http://am.internal:9093/prefix' }).alertmanagerUrl,
    'http://am.internal:9093/prefix/',
  );
  const field = (section: Parameters<typeof resolveDashboardPlan>[0]) => {
    try {
      resolveDashboardPlan(section);
    } catch (error) {
      assert.ok(isWardenError(error, 'WARDEN_E_CONFIG_INVALID'));
      return error.details.field;
    }
    assert.fail('accepted');
  };
  assert.equal(field({ historyInterval: '500ms' }), 'daemon.dashboard.historyInterval');
  assert.equal(field({ historyInterval: '1s', historyWindow: '6h' }), 'daemon.dashboard.historyWindow');
  assert.equal(field({ alertmanagerUrl: 'http://user:secret@am:9093/' }), 'daemon.dashboard.alertmanagerUrl');
  assert.equal(field({ alertmanagerUrl: 'file:///etc/passwd' }), 'daemon.dashboard.alertmanagerUrl');
  assert.equal(field({ alertmanagerUrl: 'not a url' }), 'daemon.dashboard.alertmanagerUrl');
});

test('a cluster is failing, at risk or protected by its worst finding; every finding has a level', () => {
  assert.deepEqual(Object.keys(FINDING_PROTECTION).sort(), Object.keys(FINDINGS).sort());
  const of = (...codes: FindingCode[]) =>
    protectionOf(
      codes.map((code) => ({ code })),
      codes.length,
    );
  assert.equal(of(), 'protected');
  assert.equal(of('rpo-exceeded'), 'at-risk');
  assert.equal(of('backup-stale', 'drill-failed'), 'failing');
  assert.equal(of('no-backup'), 'failing');
  assert.equal(protectionOf([], 1), 'at-risk', 'an alert that is no finding (a failed job) is a risk');
});

test('the Alertmanager relay answers 502 WARDEN_E_ALERTMANAGER_UNAVAILABLE for every bad answer', async () => {
  const hostile = await listen((request, response) => {
    const kind = new URL(request.url ?? '/', 'http://x').pathname.split('/')[1];
    if (kind === 'error') return void response.writeHead(500).end('boom');
    if (kind === 'html') return void response.writeHead(200).end('<html>not json</html>');
    if (kind === 'object') return void response.writeHead(200).end('{"alerts":[]}');
    if (kind === 'redirect') return void response.writeHead(302, { location: 'http://example.com/' }).end();
    if (kind === 'huge') {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.write('[');
      const chunk = `${JSON.stringify({ labels: { alertname: 'x'.repeat(1000) }, startsAt: 'now' })},`;
      for (let i = 0; i < 1500; i += 1) response.write(chunk);
      return void response.end('{"labels":{},"startsAt":"now"}]');
    }
    response.writeHead(404).end();
  });
  const closed = await listen(() => undefined);
  servers.at(-1)!.close();
  for (const url of [
    `${hostile}/error/`,
    `${hostile}/html/`,
    `${hostile}/object/`,
    `${hostile}/redirect/`,
    `${hostile}/huge/`,
    `${closed}/`,
  ]) {
    const base = await dashboardApp({ alertmanagerUrl: url });
    const reply = await fetch(`${base}/api/alertmanager/alerts`);
    assert.equal(reply.status, 502, url);
    const body = (await reply.json()) as { error: { code: string; details: { url: string } } };
    assert.equal(body.error.code, 'WARDEN_E_ALERTMANAGER_UNAVAILABLE', url);
    assert.equal(body.error.details.url, url);
  }
});

test('the relay reads a real Alertmanager: the fields it shows, long texts cut', async () => {
  const alertmanager = await startAlertmanager();
  try {
    await alertmanager.post([
      {
        labels: { alertname: 'WardenBackupFailed', severity: 'critical', cluster: 'main' },
        annotations: { summary: 'y'.repeat(5000), runbook_url: 'https://example.com/runbook' },
      },
    ]);
    const base = await dashboardApp({ alertmanagerUrl: alertmanager.url });
    let body: { configured: boolean; alerts: Array<Record<string, unknown>> } | undefined;
    await waitFor('the alert in Alertmanager', 20_000, async () => {
      body = (await (await fetch(`${base}/api/alertmanager/alerts`)).json()) as typeof body;
      return (body?.alerts.length ?? 0) > 0;
    });
    assert.equal(body!.configured, true);
    const [alert] = body!.alerts;
    assert.equal(alert!.name, 'WardenBackupFailed');
    assert.equal(alert!.severity, 'critical');
    assert.equal(alert!.state, 'active');
    assert.equal(alert!.summary, `${'y'.repeat(500)}…`);
    assert.deepEqual(alert!.labels, {
      alertname: 'WardenBackupFailed',
      severity: 'critical',
      cluster: 'main',
    });
    assert.ok(!Number.isNaN(Date.parse(alert!.startsAt as string)));
  } finally {
    await alertmanager.stop();
  }
});
