import assert from 'node:assert/strict';
import http from 'node:http';
import { after, test } from 'node:test';
import { tokenDigest } from '../../src/daemon/http-config.ts';
import { WardenEvents } from '../../src/events/warden-events.ts';
import type { ClusterSnapshot } from '../../src/monitoring/cluster-snapshot.ts';
import { SnapshotCache } from '../../src/monitoring/snapshot-cache.ts';
import { WardenMetrics } from '../../src/monitoring/warden-metrics.ts';
import { metricsRoute } from '../../src/server/metrics-route.ts';
import { createStatusApp } from '../../src/server/status-app.ts';
import { documentedMetrics, families, foreignFamilies, parseSamples, valueOf } from './exposition.ts';

/**
 * The metrics in-process: events and snapshots in, exposition text out. The daemon test
 * (metrics-endpoint.test.ts) shows the same against a real `warden serve`.
 */

const NOW = Date.parse('2026-06-01T12:00:00Z');
const sec = (iso: string) => Date.parse(iso) / 1000;
const MAIN = { cluster: 'main', repository: '/srv/warden/main' };

function snapshot(overrides: Partial<ClusterSnapshot> = {}): ClusterSnapshot {
  return {
    ...MAIN,
    takenAt: NOW / 1000 - 10,
    walStreaming: true,
    reachable: true,
    sizeBytes: 123_456,
    window: { start: sec('2026-05-25T00:00:00Z'), end: NOW / 1000 - 2, gaps: 1 },
    recoveryWindowSeconds: 7 * 86_400,
    lastBackups: {
      full: { at: sec('2026-05-31T00:00:00Z'), durationSeconds: 60, dataBytes: 1000, storedBytes: 400 },
      dump: { at: sec('2026-05-31T01:00:00Z'), durationSeconds: 5, dataBytes: 300, storedBytes: 100 },
    },
    verification: {
      at: sec('2026-05-31T02:00:00Z'),
      passed: false,
      lastSuccessAt: sec('2026-05-30T02:00:00Z'),
    },
    drill: { at: sec('2026-05-31T03:00:00Z'), passed: true, rtoSeconds: 42, rpoSeconds: 1.5 },
    objectives: { rtoSeconds: 14_400, rpoSeconds: 86_400 },
    stream: { up: true, lagBytes: 0, caughtUpAt: NOW / 1000 - 11 },
    rpoExposureSeconds: 3,
    slotRetainedBytes: 16_777_216,
    jobs: [{ job: 'full-backup', outcome: 'succeeded', at: sec('2026-05-31T00:00:01Z') }],
    ...overrides,
  };
}

function setup(snapshots: ClusterSnapshot[]) {
  const events = new WardenEvents((error) => {
    throw error;
  });
  const metrics = new WardenMetrics({
    clusters: [{ ...MAIN, walStreaming: true }],
    snapshots: { current: () => snapshots },
    now: () => NOW,
  });
  metrics.subscribe(events);
  const render = async () => {
    const text = await metrics.render();
    return { text, samples: parseSamples(text) };
  };
  return { events, render };
}

test('the cached snapshot alone gives every repository and server fact, labelled by cluster and repository', async () => {
  const { render } = setup([snapshot()]);
  const { samples } = await render();
  assert.equal(valueOf(samples, 'warden_up', MAIN), 1);
  assert.equal(
    valueOf(samples, 'warden_backup_last_success_timestamp_seconds', { kind: 'full' }),
    sec('2026-05-31T00:00:00Z'),
  );
  assert.equal(valueOf(samples, 'warden_backup_last_size_bytes', { kind: 'dump', stage: 'stored' }), 100);
  assert.equal(valueOf(samples, 'warden_backup_failures_total', { kind: 'incremental' }), 0);
  assert.equal(valueOf(samples, 'warden_wal_stream_up'), 1);
  assert.equal(valueOf(samples, 'warden_wal_flush_lag_seconds'), 0);
  assert.equal(valueOf(samples, 'warden_restorable_window_gaps'), 1);
  assert.equal(valueOf(samples, 'warden_verification_passed'), 0);
  assert.equal(
    valueOf(samples, 'warden_verification_last_success_timestamp_seconds'),
    sec('2026-05-30T02:00:00Z'),
  );
  assert.equal(valueOf(samples, 'warden_drill_rto_seconds'), 42);
  assert.equal(valueOf(samples, 'warden_objective_rpo_seconds'), 86_400);
  assert.equal(valueOf(samples, 'warden_slot_retained_wal_bytes'), 16_777_216);
  assert.equal(
    valueOf(samples, 'warden_job_last_run_timestamp_seconds', { job: 'full-backup', outcome: 'succeeded' }),
    sec('2026-05-31T00:00:01Z'),
  );
  for (const sample of samples.filter((s) => s.name.startsWith('warden_'))) {
    assert.equal(sample.labels.cluster, 'main', sample.name);
    assert.equal(sample.labels.repository, '/srv/warden/main', sample.name);
  }
});

test('events move the values at once; the newer of event and snapshot wins', async () => {
  const { events, render } = setup([snapshot()]);
  const at = new Date(NOW - 1000).toISOString();
  events.emit('backup.succeeded', {
    ...MAIN,
    kind: 'incremental',
    id: 'b2',
    at,
    durationMs: 2500,
    dataBytes: 2048,
    storedBytes: 512,
  });
  events.emit('backup.failed', {
    ...MAIN,
    kind: 'full',
    at,
    durationMs: 10,
    error: { code: 'WARDEN_E_X', message: 'x' },
  });
  events.emit('backup.failed', {
    ...MAIN,
    kind: 'full',
    at,
    durationMs: 10,
    error: { code: 'WARDEN_E_X', message: 'x' },
  });
  // Interrupted by a stop: not a failure.
  events.emit('backup.failed', {
    ...MAIN,
    kind: 'full',
    at,
    durationMs: 10,
    error: { code: 'WARDEN_E_ABORTED', message: 'backup was interrupted' },
  });
  events.emit('wal.stream', {
    ...MAIN,
    state: 'failed',
    at,
    error: { code: 'WARDEN_E_PROTOCOL', message: 'cut' },
  });
  events.emit('wal.flushed', {
    ...MAIN,
    lsn: '0/3000000',
    timeline: 1,
    at,
    lagBytes: 8192,
    caughtUpAt: new Date(NOW - 30_000).toISOString(),
  });
  events.emit('verification.finished', { ...MAIN, at, durationMs: 9000, passed: true });
  events.emit('drill.finished', { ...MAIN, at, passed: false, rtoSeconds: 99 });
  events.emit('job.finished', { ...MAIN, job: 'drill', outcome: 'failed', at, durationMs: 99_000 });
  // An event older than the snapshot's view does not win.
  events.emit('repository.reachability', {
    ...MAIN,
    reachable: false,
    at: new Date(NOW - 60_000).toISOString(),
  });
  const { samples } = await render();
  assert.equal(valueOf(samples, 'warden_backup_last_duration_seconds', { kind: 'incremental' }), 2.5);
  assert.equal(
    valueOf(samples, 'warden_backup_last_size_bytes', { kind: 'incremental', stage: 'data' }),
    2048,
  );
  assert.equal(
    valueOf(samples, 'warden_backup_last_success_timestamp_seconds', { kind: 'full' }),
    sec('2026-05-31T00:00:00Z'),
  );
  assert.equal(valueOf(samples, 'warden_backup_failures_total', { kind: 'full' }), 2);
  assert.equal(valueOf(samples, 'warden_wal_stream_up'), 0);
  assert.equal(valueOf(samples, 'warden_wal_flush_lag_bytes'), 8192);
  assert.equal(valueOf(samples, 'warden_wal_flush_lag_seconds'), 30);
  assert.equal(valueOf(samples, 'warden_verification_passed'), 1);
  assert.equal(valueOf(samples, 'warden_verification_last_success_timestamp_seconds'), (NOW - 1000) / 1000);
  assert.equal(valueOf(samples, 'warden_drill_passed'), 0);
  assert.equal(valueOf(samples, 'warden_drill_rto_seconds'), 99);
  assert.equal(
    samples.filter((s) => s.name === 'warden_drill_rpo_seconds').length,
    0,
    'not measured: absent',
  );
  assert.equal(
    valueOf(samples, 'warden_job_last_run_timestamp_seconds', { job: 'drill', outcome: 'failed' }),
    (NOW - 1000) / 1000,
  );
  assert.equal(valueOf(samples, 'warden_repository_reachable'), 1);
});

test('before any snapshot or event only what is known is exported; counters start at 0', async () => {
  const { render } = setup([]);
  const { samples } = await render();
  assert.equal(valueOf(samples, 'warden_up'), 1);
  assert.equal(valueOf(samples, 'warden_wal_stream_up'), 0);
  assert.deepEqual(
    samples.filter((s) => s.name === 'warden_backup_failures_total').map((s) => [s.labels.kind, s.value]),
    [
      ['full', 0],
      ['incremental', 0],
      ['dump', 0],
    ],
  );
  assert.equal(samples.filter((s) => s.name === 'warden_backup_last_success_timestamp_seconds').length, 0);
});

test('docs/metrics.md and the output name the same warden_* metrics with the same types', async () => {
  const { events, render } = setup([snapshot({ lastBackups: { ...snapshot().lastBackups } })]);
  events.emit('backup.failed', {
    ...MAIN,
    kind: 'full',
    at: new Date(NOW).toISOString(),
    durationMs: 1,
    error: { code: 'WARDEN_E_X', message: 'x' },
  });
  const { text } = await render();
  const output = new Map([...families(text)].filter(([name]) => name.startsWith('warden_')));
  assert.deepEqual([...output].sort(), [...documentedMetrics()].sort());
  const foreign = foreignFamilies(text);
  assert.ok(foreign.length > 5, 'prom-client default metrics are there');
  for (const name of foreign)
    assert.match(name, /^(process|nodejs)_/, `${name} is documented as a process metric`);
});

test('a scrape never collects: the cache refreshes in the background, bounded, and keeps the last snapshot on failure', async () => {
  let collects = 0;
  let hang = false;
  const cache = new SnapshotCache({
    sources: [
      {
        cluster: 'main',
        collect: async () => {
          collects += 1;
          if (hang) await new Promise(() => {});
          return snapshot({ sizeBytes: collects });
        },
      },
    ],
    intervalMs: 3_600_000,
    timeoutMs: 200,
  });
  const metrics = new WardenMetrics({
    clusters: [{ ...MAIN, walStreaming: true }],
    snapshots: cache,
    now: () => NOW,
  });
  cache.start();
  try {
    const sizeNow = async () =>
      parseSamples(await metrics.render()).find((s) => s.name === 'warden_repository_size_bytes')?.value;
    while (collects === 0 || (await sizeNow()) === undefined) await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 50; i += 1) await metrics.render();
    assert.equal(collects, 1, 'fifty scrapes, no collection');
    // A burst of requests costs one round; a round that hangs is abandoned, the last snapshot stays.
    hang = true;
    for (let i = 0; i < 10; i += 1) cache.requestRefresh();
    while (collects < 2) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(collects, 2);
    assert.equal(await sizeNow(), 1);
  } finally {
    await cache.stop();
  }
});

const servers: http.Server[] = [];
after(() => servers.forEach((server) => server.close()));

test('GET /metrics needs the viewer role: open on loopback without tokens, a viewer token when tokens are set', async () => {
  const VIEWER = 'metrics-viewer-token-0123456789abcdef';
  const { render } = setup([snapshot()]);
  const source = {
    contentType: 'text/plain; version=0.0.4; charset=utf-8',
    render: async () => (await render()).text,
  };
  const status = {
    status: async () => ({ daemon: { startedAt: new Date(NOW).toISOString(), warnings: [] }, clusters: [] }),
  };
  const get = async (plan: Parameters<typeof createStatusApp>[1], headers: Record<string, string> = {}) => {
    const server = http.createServer(createStatusApp(status, { ...plan, routes: [metricsRoute(source)] }));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const response = await fetch(`http://127.0.0.1:${port}/metrics`, { headers });
    return {
      status: response.status,
      type: response.headers.get('content-type'),
      text: await response.text(),
    };
  };
  const open = await get({});
  assert.equal(open.status, 200);
  assert.match(open.type ?? '', /^text\/plain; version=0\.0\.4/);
  assert.match(open.text, /^warden_up\{cluster="main",repository="\/srv\/warden\/main"\} 1$/m);
  const tokens = {
    http: {
      host: '127.0.0.1',
      allowedHosts: [],
      tokens: [{ name: 'prometheus', role: 'viewer' as const, sha256: tokenDigest(VIEWER) }],
      sessionTtlMs: 3_600_000,
    },
  };
  const refused = await get(tokens);
  assert.equal(refused.status, 401);
  assert.doesNotMatch(refused.text, /warden_up/);
  assert.equal((await get(tokens, { authorization: 'Bearer wrong-token-0123456789abcdef' })).status, 401);
  const allowed = await get(tokens, { authorization: `Bearer ${VIEWER}` });
  assert.equal(allowed.status, 200);
  assert.match(allowed.text, /^warden_up\{/m);
});

test('a slow refresh round is followed by a pause twice as long: reading catalogs takes at most a third of the time', async () => {
  const rounds: Array<{ start: number; end: number }> = [];
  const cache = new SnapshotCache({
    sources: [
      {
        cluster: 'main',
        collect: async () => {
          const start = performance.now();
          await new Promise((resolve) => setTimeout(resolve, 600));
          rounds.push({ start, end: performance.now() });
          return snapshot();
        },
      },
    ],
    intervalMs: 0,
  });
  cache.start();
  try {
    while (rounds.length < 2) await new Promise((r) => setTimeout(r, 50));
  } finally {
    await cache.stop();
  }
  const [first, second] = rounds as [{ start: number; end: number }, { start: number; end: number }];
  const took = first.end - first.start;
  assert.ok(
    second.start - first.end >= 2 * took - 5,
    `paused ${second.start - first.end} ms after a ${took} ms round`,
  );
});
