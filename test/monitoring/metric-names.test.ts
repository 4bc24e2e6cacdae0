import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { alertRules } from '../../src/monitoring/alert-rules.ts';
import { grafanaDashboards } from '../../src/monitoring/grafana-dashboards.ts';
import {
  exposedMetricNames,
  startNodeExporter,
  startPostgresExporter,
  startRedisExporter,
} from '../harness/exporters.ts';
import type { LoopbackProcess } from '../harness/loopback-process.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { startRedis, type TestRedis } from '../harness/redis.ts';
import {
  isServiceLibraryMetric,
  PROMETHEUS_SERIES,
  SERVICE_LIBRARY_METRICS,
  wardenMetricNames,
} from './known-metrics.ts';
import { metricNamesIn } from './promql-metric-names.ts';

const METRICS_DOC = fileURLToPath(new URL('../../docs/metrics.md', import.meta.url));

let cluster: TestCluster;
let redis: TestRedis;
const exporters: LoopbackProcess[] = [];
/** What each real exporter exposes, scraped from it. */
const exposed = new Map<string, Set<string>>();

before(async () => {
  [cluster, redis] = await Promise.all([startCluster(), startRedis()]);
  exporters.push(
    await startPostgresExporter(`${cluster.url()}?sslmode=disable`),
    await startRedisExporter(redis.port),
    await startNodeExporter(),
  );
  for (const exporter of exporters) {
    const text = await (await fetch(`${exporter.url}/metrics`)).text();
    exposed.set(exporter.name, exposedMetricNames(text));
  }
});

after(async () => {
  for (const exporter of exporters) await exporter.stop();
  await Promise.all([cluster?.stop(), redis?.stop()]);
});

/** Every PromQL expression Warden ships, named by where it is. */
function shippedExpressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const group of alertRules().groups)
    for (const rule of group.rules) out.push({ where: `rule ${rule.alert}`, expr: rule.expr });
  for (const [file, dashboard] of grafanaDashboards()) {
    for (const panel of dashboard.panels)
      for (const target of panel.targets ?? [])
        out.push({ where: `${file} "${panel.title}"`, expr: target.expr });
    for (const variable of dashboard.templating.list as { name: string; definition?: string }[])
      if (variable.definition) {
        const metric = /label_values\((\w+),/.exec(variable.definition)?.[1];
        if (metric) out.push({ where: `${file} variable $${variable.name}`, expr: metric });
      }
  }
  return out;
}

test('the real exporters expose what the rules need, with the Debian package defaults', () => {
  // Sanity of the scrape itself: each exporter answered with its own families.
  assert.ok(exposed.get('postgres_exporter')!.has('pg_up'));
  assert.ok(exposed.get('redis_exporter')!.has('redis_up'));
  assert.ok(exposed.get('node_exporter')!.has('node_cpu_seconds_total'));
  // The replication-lag query comes from the package's example queries.yaml (--extend.query-path).
  assert.ok(exposed.get('postgres_exporter')!.has('pg_replication_lag'));
});

test('every metric a rule or a panel reads is one Warden, the service library or a named exporter exposes', async () => {
  // docs/metrics.md is kept equal to the real /metrics output by the metrics feature's own test.
  const warden = await wardenMetricNames(METRICS_DOC);
  assert.ok(warden.size >= 20, `docs/metrics.md lists ${warden.size} warden_* metrics`);
  const fromExporters = new Set([...exposed.values()].flatMap((names) => [...names]));
  const unknown: string[] = [];
  const used = new Set<string>();
  for (const { where, expr } of shippedExpressions()) {
    for (const name of metricNamesIn(expr)) {
      used.add(name);
      const known = isServiceLibraryMetric(name)
        ? SERVICE_LIBRARY_METRICS.has(name)
        : name.startsWith('warden_')
          ? warden.has(name)
          : PROMETHEUS_SERIES.has(name) || fromExporters.has(name);
      if (!known) unknown.push(`${where}: ${name}`);
    }
  }
  assert.deepEqual(unknown, []);
  // The check sees the names at all: every source is used somewhere.
  for (const prefix of ['warden_backup_', 'warden_cache_', 'hikaricp_', 'pg_', 'redis_', 'node_'])
    assert.ok(
      [...used].some((name) => name.startsWith(prefix)),
      prefix,
    );
});
