import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { segmentDataKey, segmentRecordKey } from '../../src/repository/wal-archive.ts';
import { freePort } from '../../src/util/free-port.ts';
import { startAlertmanager, type TestAlertmanager } from '../harness/alertmanager-process.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { SpawnedWardens, waitFor, type SpawnedWarden } from '../harness/spawned-warden.ts';
import { tempDir } from '../harness/temp-dir.ts';

/**
 * The dashboard in a real browser (Debian's chromium) against a real `warden serve` protecting
 * two clusters of a real PostgreSQL, with its API behind a token: what a person sees after
 * signing in. `orders` has an RTO objective no restore can meet, so its DR drill (run by the
 * daemon) fails, and a segment lost from its archive leaves a WAL gap; `billing` is backed up,
 * verified and streamed, so it is protected. The daemon
 * reads a real Alertmanager holding an alert whose text is hostile HTML.
 *
 * Screenshots go to a temp dir, or to WARDEN_DASHBOARD_SCREENSHOTS (scripts/dashboard-screenshots.sh
 * refreshes docs/images/ that way).
 */

const TOKEN = 'dashboard-test-token-0123456789abcdefghijkl';
const HOSTILE = '<img src=x id=pwned onerror=alert(1)>';
const wardens = new SpawnedWardens();
let cluster: TestCluster;
let alertmanager: TestAlertmanager;
let serve: SpawnedWarden;
let base: string;
let browser: Browser;
let shots: string;

async function api<T>(route: string): Promise<T> {
  const response = await fetch(`${base}${route}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(response.status, 200, `${route}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

interface StatusView {
  clusters: Array<{
    name: string;
    protection: string;
    lastDrill?: { passed: boolean };
    lastVerification?: { passed: boolean };
    rpoExposureSeconds?: number;
    lastBackup: { full?: { id: string } };
    walStream: { state: string };
  }>;
}

before(async () => {
  const work = await tempDir('dashboard');
  shots = process.env.WARDEN_DASHBOARD_SCREENSHOTS
    ? path.resolve(process.env.WARDEN_DASHBOARD_SCREENSHOTS)
    : path.join(work, 'screenshots');
  await mkdir(shots, { recursive: true });
  [cluster, alertmanager] = await Promise.all([startCluster(), startAlertmanager()]);
  await cluster.query(
    'CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g',
  );
  await alertmanager.post([
    {
      labels: { alertname: 'PostgresReplicationLagHigh', severity: 'warning', cluster: 'orders' },
      annotations: { summary: `replica lag above 30s ${HOSTILE}` },
    },
  ]);
  const passwordFile = path.join(work, 'pg-password');
  await writeFile(passwordFile, `${cluster.password}\n`, { mode: 0o600 });
  const tokenFile = path.join(work, 'token');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const connection = (slot: string) => [
    `    host: 127.0.0.1`,
    `    port: ${cluster.port}`,
    `    user: postgres`,
    `    database: postgres`,
    `    tls: disable`,
    `    passwordFile: ${passwordFile}`,
    `    slot: ${slot}`,
  ];
  const config = path.join(work, 'warden.yaml');
  // Yearly slots: each job runs once, as the catch-up of this year's slot, when the daemon starts.
  const yearly = '"0 0 1 1 *"';
  const writeConfig = (phase: 'backups' | 'checks') =>
    writeFile(
      config,
      [
        'daemon:',
        '  profile: dev',
        '  schedules:',
        '    full-backup: null',
        `    backup: ${yearly}`,
        '    logical-dump: null',
        '    retention: null',
        '    verification: null',
        '    drill: null',
        '  http:',
        '    tokens:',
        `      - { name: ops, role: viewer, tokenFile: ${tokenFile} }`,
        '  dashboard:',
        '    historyInterval: 1s',
        '    historyWindow: 1h',
        `    alertmanagerUrl: ${alertmanager.url}`,
        '  clusters:',
        '  - name: orders',
        `    repository: ${path.join(work, 'repo-orders')}`,
        '    objectives: { rto: 1ms }',
        ...(phase === 'checks' ? [`    schedules: { drill: ${yearly} }`] : []),
        ...connection('warden_orders'),
        '  - name: billing',
        `    repository: ${path.join(work, 'repo-billing')}`,
        ...(phase === 'checks' ? [`    schedules: { verification: ${yearly} }`] : []),
        ...connection('warden_billing'),
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const startServe = async () => {
    serve = wardens.spawn(['serve', '--config', config, '--no-encryption', '--http-port', String(port)], {
      cwd: work,
    });
    await waitFor('the dashboard line', 60_000, () => {
      assert.equal(serve.child.exitCode, null, `warden serve exited:\n${serve.output()}`);
      return serve.output().includes(`dashboard: ${base}/`);
    });
  };
  const clusters = async () => (await api<StatusView>('/api/status')).clusters;
  // First the daemon takes both backups and streams; then, restarted with the checks scheduled,
  // it verifies billing and drills orders. (A restore that starts while the backup's segment
  // switch is still being streamed may miss the .partial segment the stream just completed.)
  await writeConfig('backups');
  await startServe();
  await waitFor(
    'both backups, streamed past',
    120_000,
    async () =>
      (await clusters()).every(
        (c) => c.lastBackup?.full && c.rpoExposureSeconds !== undefined && c.walStream.state === 'streaming',
      ),
    500,
  );
  // A hole in orders' archive: three segment switches, the middle segment then deleted while
  // the daemon is down (as a lost object would be), so its window ends at a WAL gap.
  const segments: string[] = [];
  for (let i = 0; i < 3; i += 1) {
    await cluster.query('INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 1000) g');
    const [row] = await cluster.query<{ name: string }>(
      'SELECT pg_walfile_name(pg_current_wal_lsn()) AS name, pg_switch_wal()',
    );
    segments.push(row!.name);
  }
  const ordersRepo = path.join(work, 'repo-orders');
  await waitFor('the switched segments archived', 60_000, () =>
    existsSync(path.join(ordersRepo, segmentRecordKey(1, segments[2]!))),
  );
  serve.child.kill('SIGTERM');
  assert.equal((await serve.exited).code, 0, serve.output());
  await rm(path.join(ordersRepo, segmentDataKey(1, segments[1]!)));
  await rm(path.join(ordersRepo, segmentRecordKey(1, segments[1]!)));
  await writeConfig('checks');
  await startServe();
  await waitFor(
    'the drill and the verification',
    120_000,
    async () => {
      const [orders, billing] = await clusters();
      return orders?.lastDrill !== undefined && billing?.lastVerification !== undefined;
    },
    500,
  );
  await waitFor(
    'three history samples with RPO exposure',
    30_000,
    async () => {
      const history = await api<{ samples: Array<{ clusters: Array<{ rpoExposureSeconds?: number }> }> }>(
        '/api/history',
      );
      return (
        history.samples.filter((s) => s.clusters.every((c) => c.rpoExposureSeconds !== undefined)).length >= 3
      );
    },
    500,
  );
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking'],
  });
});

after(async () => {
  await browser?.close();
  await wardens.killAll();
  await alertmanager?.stop();
  await cluster?.stop();
});

/** A page whose console errors, page errors and CSP violations are collected. */
async function openPage(): Promise<{ page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  return { page, problems };
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.getByLabel('Access token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('the page is served with a strict Content-Security-Policy and no data without a session', async () => {
  const response = await fetch(`${base}/`);
  assert.equal(response.status, 200);
  const csp = response.headers.get('content-security-policy') ?? '';
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/, 'no inline script, no other origin');
  assert.equal(response.headers.get('x-frame-options'), 'DENY');
  const page = await response.text();
  assert.doesNotMatch(page, /<script>|<script [^>]*>[^<]/, 'no inline script in the page');
  for (const route of ['/api/status', '/api/history', '/api/catalog', '/api/alertmanager/alerts'])
    assert.equal((await fetch(`${base}${route}`)).status, 401, `${route} needs a token or session`);
});

test('a person signs in and sees each cluster protected or failing, its window, backups, drills, jobs and alerts', async () => {
  const { page, problems } = await openPage();
  await page.goto(`${base}/`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.screenshot({
    path: path.join(shots, 'dashboard-sign-in.png'),
    clip: { x: 0, y: 0, width: 1000, height: 340 },
  });

  await signIn(page, 'not-the-token-at-all-not-the-token-at-all');
  await page.getByText('That token is not valid.').waitFor();
  // The refused sign-in is the only thing the browser may complain about (its 401).
  assert.ok(
    problems.every((p) => /401/.test(p)),
    problems.join('\n'),
  );
  problems.length = 0;

  await signIn(page, TOKEN);
  await page.locator('body[data-loaded="true"]').waitFor({ timeout: 30_000 });
  await page.getByText('ops (viewer)').waitFor();

  // At a glance.
  const orders = page.locator('.card[data-cluster="orders"]');
  const billing = page.locator('.card[data-cluster="billing"]');
  assert.equal(await orders.locator('.badge').innerText(), 'Failing');
  assert.equal(
    await billing.locator('.badge').innerText(),
    'Protected',
    JSON.stringify(
      (await api<{ clusters: Array<{ alerts: string[] }> }>('/api/status')).clusters.map((c) => c.alerts),
    ),
  );
  assert.equal(await page.locator('#summary').innerText(), '1 protected · 0 at risk · 1 failing');

  // orders: the failed drill, shown as failed, with its RTO over the objective.
  const ordersPanel = page.locator('section.cluster[data-cluster="orders"]');
  const drillRow = ordersPanel.locator('table', { hasText: 'DR drills' }).locator('tbody tr').first();
  assert.equal(await drillRow.locator('.badge').innerText(), 'Failed');
  assert.match(await drillRow.locator('td').nth(2).innerText(), /\/ 1 ms$/);
  assert.equal(await drillRow.locator('td .over').count(), 1, 'the RTO is marked over its objective');
  assert.match(await drillRow.locator('td').nth(4).innerText(), /RTO/);
  const findings = await ordersPanel.locator('ul.findings').innerText();
  assert.ok(findings.includes('drill-failed') && findings.includes('wal-gap'), findings);
  // Its window: one range, ending at the gap, which is marked.
  assert.match(await ordersPanel.locator('figure.timeline figcaption').innerText(), /, 1 WAL gap\(s\)$/);
  assert.equal(await ordersPanel.locator('svg .tl-range').count(), 1);
  assert.equal(await ordersPanel.locator('svg .tl-gap').count(), 1);

  // billing: the restorable window as a timeline with its backup marked, the backup verified.
  const billingPanel = page.locator('section.cluster[data-cluster="billing"]');
  const catalog = await api<{
    clusters: Array<{ name: string; backups: Array<{ id: string; storedBytes: number }> }>;
  }>('/api/catalog');
  const billingBackups = catalog.clusters.find((c) => c.name === 'billing')!.backups;
  assert.equal(billingBackups.length, 1);
  assert.match(
    await billingPanel.locator('figure.timeline figcaption').innerText(),
    /^Restorable from .+ to .+, no WAL gap$/,
  );
  assert.equal(await billingPanel.locator('svg .tl-range').count(), 1);
  assert.equal(await billingPanel.locator('svg .tl-gap').count(), 0);
  assert.equal(await billingPanel.locator('svg .tl-backup').count(), billingBackups.length);
  const backupRow = billingPanel.locator('table', { hasText: 'Backups' }).locator('tbody tr').first();
  const backupText = await backupRow.innerText();
  assert.ok(backupText.includes(billingBackups[0]!.id), backupText);
  assert.match(backupText, /\d+(\.\d)? (B|KiB|MiB) stored/);
  assert.match(await backupRow.locator('td').nth(5).innerText(), /^verified /);

  // Jobs with last and next runs; the RPO chart drawn from the daemon's history.
  const jobRow = billingPanel
    .locator('table', { hasText: 'Jobs' })
    .locator('tr', { hasText: 'verification' });
  assert.match(await jobRow.innerText(), /succeeded .* UTC\s+\d{4}-01-01 00:00:00 UTC/);
  assert.match(
    (await billingPanel.locator('svg.chart').first().getAttribute('aria-label')) ?? '',
    /^RPO exposure: /,
  );
  assert.equal(await billingPanel.locator('svg.chart polyline').count(), 2);

  // Alerts: Warden's own (the failed drill) and Alertmanager's, whose HTML is shown as text.
  // Warden's own conditions, as the webhooks send them (GET /api/alerts).
  assert.match(await page.locator('#warden-alerts').innerText(), /orders: DR drill failed: .*RTO/);
  const relayed = await page.locator('#am-alerts').innerText();
  assert.ok(relayed.includes('PostgresReplicationLagHigh (warning)'), relayed);
  assert.ok(relayed.includes(HOSTILE), 'the hostile summary is shown as text');
  assert.equal(await page.locator('#pwned').count(), 0, 'no element was made from it');

  // Down to the end of the first cluster (the failing one): small enough to commit.
  const first = (await ordersPanel.boundingBox())!;
  await page.screenshot({
    path: path.join(shots, 'dashboard.png'),
    fullPage: true,
    clip: { x: 0, y: 0, width: 1000, height: Math.ceil(first.y + first.height + 12) },
  });
  assert.deepEqual(problems, [], 'no console error');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.reload();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.deepEqual(problems, [], 'no console error after signing out');
});
