/**
 * `GET /metrics` scrape latency with many clusters and a large catalog (not in CI).
 *
 *   node --import tsx bench/metrics-scrape.ts
 *
 * Builds one synthetic filesystem repository holding BENCH_BACKUPS commit markers (default
 * 10,000; records only, no archive objects: the metrics never read those) and BENCH_CLUSTERS
 * clusters (default 20) whose repositories are symlinks to it, so every cluster's catalog has
 * all of them. The daemon's pieces run in-process: the snapshot collector of each cluster
 * (collectMetricsSnapshot: the status document plus the catalog facts; no server connection, so
 * no database round trip), the SnapshotCache, WardenMetrics and the HTTP app with the /metrics
 * route on a loopback port. Measured:
 *   1. one background refresh round over every cluster (what the catalog size costs);
 *   2. BENCH_SCRAPES (200) sequential scrapes over HTTP with the cache filled, refresh idle;
 *   3. the same while refresh rounds run back to back (the worst case for a scrape).
 * Appends a section to BENCHMARKS.md (BENCH_NO_APPEND=1: print only).
 */
import { appendFile, mkdir, rm, symlink } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { resolveDaemonPlan, type ClusterPlan } from '../src/daemon/daemon-config.ts';
import { collectMetricsSnapshot } from '../src/daemon/metrics-snapshot.ts';
import { WardenEvents } from '../src/events/warden-events.ts';
import { SnapshotCache } from '../src/monitoring/snapshot-cache.ts';
import { WardenMetrics } from '../src/monitoring/warden-metrics.ts';
import { commitBackup, type BackupRecord } from '../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../src/repository/fs/fs-object-store.ts';
import { Repository } from '../src/repository/repository.ts';
import { DEFAULT_RETENTION_POLICY } from '../src/retention/retention-policy.ts';
import { metricsRoute } from '../src/server/metrics-route.ts';
import { createStatusApp } from '../src/server/status-app.ts';

const CLUSTERS = Number(process.env.BENCH_CLUSTERS ?? 20);
const BACKUPS = Number(process.env.BENCH_BACKUPS ?? 10_000);
const SCRAPES = Number(process.env.BENCH_SCRAPES ?? 200);

const root = path.join(os.tmpdir(), `warden-bench-metrics-${process.pid}`);
await mkdir(root, { recursive: true });
try {
  const catalog = path.join(root, 'catalog');
  const store = new FsObjectStore(catalog);
  const repository = await Repository.openFor(store, {
    systemId: '7300000000000000001',
    walSegmentSize: 16 * 1024 * 1024,
    serverVersion: '15.10',
  });
  const t0 = performance.now();
  const start = Date.parse('2025-01-01T00:00:00Z');
  for (let i = 0; i < BACKUPS; i += 1) {
    const begin = new Date(start + i * 3_600_000);
    const id = `${begin.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)}F`;
    const object = { size: 4_000_000, rawSize: 25_000_000, sha256: '0'.repeat(64) };
    const record: BackupRecord = {
      format: 1,
      id,
      kind: 'full',
      systemId: repository.meta.systemId,
      timeline: 1,
      startLsn: `0/${(i * 2 + 1).toString(16).toUpperCase()}000000`,
      endLsn: `0/${(i * 2 + 2).toString(16).toUpperCase()}000000`,
      startTime: begin.toISOString(),
      endTime: new Date(begin.getTime() + 60_000).toISOString(),
      serverVersion: '15.10',
      compression: 'zstd',
      compressedOn: 'client',
      archives: [{ ...object, key: `backups/${id}/base.tar.zst`, archive: 'base.tar', compression: 'zstd' }],
      manifest: { ...object, key: `backups/${id}/backup_manifest.zst`, size: 20_000, rawSize: 100_000 },
      durationMs: 60_000,
    };
    await commitBackup(repository, record);
  }
  const buildSeconds = (performance.now() - t0) / 1000;

  const base = resolveDaemonPlan({
    section: { profile: 'prod', http: { port: 0 } },
    baseDir: root,
    defaultCluster: { repository: { path: catalog }, slot: 'warden' },
    retention: DEFAULT_RETENTION_POLICY,
    flags: {},
    env: {},
  }).clusters[0]!;
  const clusters: Array<{ plan: ClusterPlan; store: FsObjectStore }> = [];
  for (let i = 0; i < CLUSTERS; i += 1) {
    const where = path.join(root, `cluster-${i}`);
    await symlink(catalog, where);
    const plan = {
      ...base,
      name: `cluster-${String(i).padStart(2, '0')}`,
      repository: { path: where },
    } as ClusterPlan;
    clusters.push({ plan, store: new FsObjectStore(where) });
  }
  const cache = new SnapshotCache({
    sources: clusters.map(({ plan, store: s }) => ({
      cluster: plan.name,
      collect: () => collectMetricsSnapshot({ plan, store: s, live: { jobs: [] } }),
    })),
    intervalMs: 3_600_000,
    timeoutMs: 600_000,
  });
  const metrics = new WardenMetrics({
    clusters: clusters.map(({ plan, store: s }) => ({
      cluster: plan.name,
      repository: s.location,
      walStreaming: true,
    })),
    snapshots: cache,
  });
  metrics.subscribe(new WardenEvents());
  const server = http.createServer(
    createStatusApp(
      { status: async () => ({ daemon: { startedAt: '', warnings: [] }, clusters: [] }) },
      {
        routes: [metricsRoute(metrics)],
      },
    ),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/metrics`;

  const t1 = performance.now();
  await cache.refresh();
  const roundSeconds = (performance.now() - t1) / 1000;

  const scrape = async () => {
    const t = performance.now();
    const response = await fetch(url);
    const body = await response.text();
    if (response.status !== 200 || !body.includes('warden_repository_size_bytes'))
      throw new Error('bad scrape');
    return { ms: performance.now() - t, bytes: body.length };
  };
  const series = async () => {
    const times: number[] = [];
    let bytes = 0;
    for (let i = 0; i < SCRAPES; i += 1) {
      const result = await scrape();
      times.push(result.ms);
      bytes = result.bytes;
    }
    return { ...stats(times), bytes };
  };
  const loadBefore = os.loadavg();
  const idle = await series();
  let refreshing = true;
  let rounds = 0;
  const background = (async () => {
    while (refreshing) {
      await cache.refresh();
      rounds += 1;
    }
  })();
  const busy = await series();
  refreshing = false;
  // Ends the round in progress after its current cluster, not after all of them.
  await cache.stop();
  await background;
  const loadAfter = os.loadavg();
  server.close();

  const fmt = (s: ReturnType<typeof stats>) =>
    `${s.median.toFixed(1)} ms | ${s.p90.toFixed(1)} ms | ${s.min.toFixed(1)}–${s.max.toFixed(1)} ms`;
  const report = [
    '',
    '## Metrics scrape (`GET /metrics`)',
    '',
    `Measured ${new Date().toISOString()} by \`bench/metrics-scrape.ts\` on ${os.cpus().length} vCPU, load average`,
    `${loadBefore[0]!.toFixed(1)} before and ${loadAfter[0]!.toFixed(1)} after (other work ran on the machine). ${CLUSTERS} clusters, each`,
    `catalog ${BACKUPS.toLocaleString('en')} backup records (one filesystem repository, ${CLUSTERS} symlinked locations; built in ${buildSeconds.toFixed(0)} s).`,
    `${SCRAPES} sequential scrapes over loopback HTTP per row; response ${(idle.bytes / 1024).toFixed(0)} KiB.`,
    '',
    '| scrape while | median | p90 | range |',
    '| --- | --- | --- | --- |',
    `| cache filled, refresh idle | ${fmt(idle)} |`,
    `| a refresh round reading the catalogs throughout (${rounds} round(s)) | ${fmt(busy)} |`,
    '',
    `- One background refresh round over all ${CLUSTERS} clusters (status document + catalog facts, no`,
    `  database connection configured): ${roundSeconds.toFixed(1)} s, i.e. ${((roundSeconds / CLUSTERS) * 1000).toFixed(0)} ms per cluster of ${BACKUPS.toLocaleString('en')} records;`,
    '  it runs every 30 s and after job runs, one cluster at a time, whatever the scrape rate.',
    '- A scrape renders cached values only: its cost does not grow with the catalog. The second row is',
    '  what a scrape costs while the refresh (same process, same event loop) reads catalogs.',
    '',
  ].join('\n');
  process.stdout.write(report);
  if (process.env.BENCH_NO_APPEND !== '1') await appendFile(path.resolve('BENCHMARKS.md'), report);
} finally {
  await rm(root, { recursive: true, force: true });
}

function stats(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { median: at(0.5), p90: at(0.9), min: sorted[0]!, max: sorted.at(-1)! };
}
