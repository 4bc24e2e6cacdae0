// Warden's dashboard: reads the daemon's HTTP API and renders it. No framework and no build step.
// Everything shown comes from the API (cluster names, error messages from servers and storage),
// so it is only ever written as text (textContent, text nodes, attribute values of fixed names):
// never as HTML.

import { $, api, badge, el, fmtBytes, fmtDuration, fmtTime, SignInRequired, table } from './dom.js';
import { historyChart, windowTimeline } from './charts.js';

const REFRESH_MS = 10_000;
const PROTECTION_LABEL = { protected: 'Protected', 'at-risk': 'At risk', failing: 'Failing' };

// ---- sections ----

function renderOverview(status) {
  const counts = { protected: 0, 'at-risk': 0, failing: 0 };
  for (const c of status.clusters) counts[c.protection] = (counts[c.protection] ?? 0) + 1;
  $('summary').replaceChildren(
    `${counts.protected} protected · ${counts['at-risk']} at risk · ${counts.failing} failing`,
  );
  $('overview').replaceChildren(
    ...status.clusters.map((c) =>
      el(
        'a',
        {
          class: `card ${c.protection}`,
          href: `#cluster-${encodeURIComponent(c.name)}`,
          'data-cluster': c.name,
        },
        el('span', { class: 'card-name' }, c.name),
        badge(PROTECTION_LABEL[c.protection] ?? c.protection, c.protection),
        el('span', { class: 'card-line' }, `Restorable up to ${fmtTime(c.restorableWindow?.latest)}`),
        el(
          'span',
          { class: 'card-line' },
          `RPO exposure ${c.rpoExposureSeconds === undefined ? '—' : fmtDuration(c.rpoExposureSeconds * 1000)} (objective ${c.objectives.rpo})`,
        ),
      ),
    ),
  );
}

/**
 * Warden's own alert conditions, the same ones its webhooks send (`/api/alerts`), most severe
 * first; the status document's alert lines stand in when that list cannot be read.
 */
function renderWardenAlerts(status, conditions) {
  const protection = new Map(status.clusters.map((c) => [c.name, c.protection]));
  const items = conditions
    ? conditions.alerts.map((a) => ({
        cluster: a.cluster,
        level: a.severity === 'critical' ? 'failing' : 'at-risk',
        text: `${a.title}: ${a.summary} (since ${fmtTime(a.since)})`,
      }))
    : status.clusters.flatMap((c) =>
        c.alerts.map((alert) => ({ cluster: c.name, level: c.protection, text: alert })),
      );
  $('warden-alerts').replaceChildren(
    el('h3', {}, 'Warden'),
    items.length === 0
      ? el('p', { class: 'muted' }, 'No Warden alert: every cluster is protected.')
      : el(
          'ul',
          { class: 'alerts' },
          items.map(({ cluster, level, text }) =>
            el('li', { class: level ?? protection.get(cluster) }, el('strong', {}, cluster), ': ', text),
          ),
        ),
  );
}

function renderAlertmanager(result) {
  const target = $('am-alerts');
  if (!result || result.configured === false) {
    target.replaceChildren();
    return;
  }
  const heading = el('h3', {}, 'Alertmanager');
  if (result.error) {
    target.replaceChildren(heading, el('p', { class: 'error' }, `Cannot read Alertmanager: ${result.error}`));
    return;
  }
  target.replaceChildren(
    heading,
    result.alerts.length === 0
      ? el('p', { class: 'muted' }, 'No active alert in Alertmanager.')
      : el(
          'ul',
          { class: 'alerts' },
          result.alerts.map((a) =>
            el(
              'li',
              { class: a.severity === 'critical' ? 'failing' : 'at-risk' },
              el('strong', {}, a.name),
              a.severity ? ` (${a.severity})` : '',
              a.summary ? `: ${a.summary}` : '',
              el('span', { class: 'muted' }, ` since ${fmtTime(a.startsAt)}`),
            ),
          ),
        ),
  );
}
function backupsTable(catalog) {
  const rows = [...(catalog?.backups ?? [])]
    .reverse()
    .map((b) => [
      el('span', { class: 'mono' }, b.name ? `${b.name} (${b.id})` : b.id),
      b.kind,
      fmtTime(b.endTime),
      `${fmtBytes(b.storedBytes)} stored / ${fmtBytes(b.dataBytes)} data`,
      b.kind === 'full'
        ? 'full'
        : b.chainComplete
          ? `on ${b.parent}`
          : badge(`parent ${b.parent} missing`, 'failing'),
      b.verification
        ? b.verification.passed
          ? badge(`verified ${fmtTime(b.verification.startedAt)}`, 'protected')
          : badge(`verification failed: ${b.verification.failed.join(', ') || 'see report'}`, 'failing')
        : el('span', { class: 'muted' }, 'not verified'),
      b.restorable ? 'yes' : badge('no', 'at-risk'),
    ]);
  return table(
    'Backups',
    ['Backup', 'Kind', 'Ended', 'Size', 'Chain', 'Verification', 'Restorable'],
    rows,
    catalog?.error ? `Backups cannot be listed: ${catalog.error.message}` : 'No backup yet.',
  );
}

function drillsTable(catalog) {
  const within = (measured, objective) =>
    measured === undefined
      ? el('span', { class: 'muted' }, 'not measured')
      : el(
          'span',
          { class: measured <= objective ? 'ok' : 'over' },
          `${fmtDuration(measured)} / ${fmtDuration(objective)}`,
        );
  const rows = (catalog?.drills ?? []).map((d) => [
    fmtTime(d.startedAt),
    d.passed ? badge('Passed', 'protected') : badge('Failed', 'failing'),
    within(d.rtoMs, d.objectives.rtoMs),
    within(d.rpoMs, d.objectives.rpoMs),
    d.failures.join('; ') || '—',
  ]);
  return table(
    'Recent DR drills (measured / objective)',
    ['Started', 'Result', 'RTO', 'RPO', 'Why it failed'],
    rows,
    'No DR drill yet.',
  );
}

function jobsTable(cluster) {
  const rows = cluster.jobs.map((j) => [
    j.name,
    el('span', { class: 'mono' }, `${j.schedule} (${j.timezone})`),
    j.running
      ? badge('running', 'at-risk')
      : j.lastRun
        ? el(
            'span',
            {},
            badge(j.lastRun.status, j.lastRun.status === 'failed' ? 'failing' : 'protected'),
            ` ${fmtTime(j.lastRun.finishedAt)}`,
            j.lastRun.error ? ` — ${j.lastRun.error.message}` : '',
          )
        : el('span', { class: 'muted' }, 'never'),
    j.retry ? `retry ${fmtTime(j.retry.at)}` : fmtTime(j.nextRun),
  ]);
  return table('Jobs', ['Job', 'Schedule', 'Last run', 'Next run'], rows, 'No scheduled job.');
}

function renderCluster(cluster, catalog, samples) {
  const mine = samples.map((s) => ({ at: s.at, c: s.clusters.find((c) => c.name === cluster.name) }));
  const stream = cluster.walStream;
  return el(
    'section',
    {
      class: `panel cluster ${cluster.protection}`,
      id: `cluster-${cluster.name}`,
      'data-cluster': cluster.name,
    },
    el(
      'h2',
      {},
      el('span', {}, cluster.name),
      ' ',
      badge(PROTECTION_LABEL[cluster.protection] ?? cluster.protection, cluster.protection),
    ),
    el(
      'p',
      { class: 'muted' },
      `Profile ${cluster.profile}, RTO ${cluster.objectives.rto}, RPO ${cluster.objectives.rpo} (${cluster.objectives.source}). ` +
        `Repository ${cluster.repository.location}. WAL stream ${stream.state}` +
        (stream.lastError ? ` (${stream.lastError.message})` : '') +
        '.',
    ),
    cluster.findings.length
      ? el(
          'ul',
          { class: 'findings' },
          cluster.findings.map((f) =>
            el(
              'li',
              {},
              el('span', { class: 'mono' }, f.code),
              ` ${f.message}`,
              f.hint ? el('div', { class: 'muted' }, f.hint) : '',
            ),
          ),
        )
      : '',
    windowTimeline(cluster, catalog),
    el(
      'div',
      { class: 'charts' },
      historyChart(
        'RPO exposure',
        mine,
        (s) => s.c?.rpoExposureSeconds,
        (v) => fmtDuration(v * 1000),
        { value: cluster.objectives.rpoMs / 1000, label: `objective ${cluster.objectives.rpo}` },
      ),
      historyChart('WAL flush lag', mine, (s) => s.c?.lagBytes, fmtBytes),
    ),
    backupsTable(catalog),
    drillsTable(catalog),
    jobsTable(cluster),
  );
}

// ---- loading ----

let timer;

async function refresh() {
  clearTimeout(timer);
  try {
    const [status, history, catalog, conditions, alertmanager] = await Promise.all([
      api('/api/status'),
      api('/api/history'),
      api('/api/catalog'),
      api('/api/alerts').catch((error) => {
        if (error instanceof SignInRequired) throw error;
        return undefined;
      }),
      api('/api/alertmanager/alerts').catch((error) => {
        if (error instanceof SignInRequired) throw error;
        return { configured: true, alerts: [], error: error.message };
      }),
    ]);
    renderOverview(status);
    renderWardenAlerts(status, conditions);
    renderAlertmanager(alertmanager);
    const byName = new Map(catalog.clusters.map((c) => [c.name, c]));
    $('clusters').replaceChildren(
      ...status.clusters.map((c) => renderCluster(c, byName.get(c.name), history.samples)),
    );
    $('updated').textContent = fmtTime(new Date().toISOString());
    $('load-error').hidden = true;
    $('dashboard').hidden = false;
    document.body.dataset.loaded = 'true';
  } catch (error) {
    if (error instanceof SignInRequired) return showSignIn();
    $('load-error').textContent = `Cannot load the status: ${error.message}`;
    $('load-error').hidden = false;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function showSignIn() {
  clearTimeout(timer);
  $('dashboard').hidden = true;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  $('sign-in').hidden = false;
  $('token').focus();
}

async function start() {
  try {
    const identity = await api('/api/identity');
    if (!identity.signedIn) return showSignIn();
    $('who').textContent = `${identity.name} (${identity.role})`;
    $('sign-out').hidden = identity.via !== 'session';
    $('sign-in').hidden = true;
    await refresh();
  } catch (error) {
    $('load-error').textContent = `Cannot reach the daemon: ${error.message}`;
    $('load-error').hidden = false;
  }
}

$('sign-in-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('token');
  $('sign-in-error').textContent = '';
  try {
    await api('/api/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: input.value }),
    });
    input.value = '';
    await start();
  } catch (error) {
    $('sign-in-error').textContent =
      error instanceof SignInRequired ? 'That token is not valid.' : `Sign-in failed: ${error.message}`;
  }
});

$('sign-out').addEventListener('click', async () => {
  await api('/api/session', { method: 'DELETE' }).catch(() => undefined);
  showSignIn();
});

void start();
