import { exportMetrics, type FamilySpec, type Sample } from '../metrics/metric-family.ts';
import type { MetricsOptions } from '../metrics/metrics-options.ts';
import type { PoolRecentMaxima, PoolStats } from './pool.ts';

/**
 * The families HikariCP's Micrometer tracker (`MicrometerMetricsTracker`) registers, as
 * Micrometer's Prometheus registry names them: gauges keep their name, the timeout counter gains
 * `_total`, each timer becomes a summary in seconds (`_count`, `_sum`) plus a `_max` gauge. Same
 * names, types, units and `pool` label, so Hikari dashboards and alerts work unchanged.
 */
export const HIKARI_FAMILIES = [
  { name: 'hikaricp_connections', help: 'Total connections', type: 'gauge' },
  { name: 'hikaricp_connections_active', help: 'Active connections', type: 'gauge' },
  { name: 'hikaricp_connections_idle', help: 'Idle connections', type: 'gauge' },
  { name: 'hikaricp_connections_pending', help: 'Pending threads', type: 'gauge' },
  { name: 'hikaricp_connections_max', help: 'Max connections', type: 'gauge' },
  { name: 'hikaricp_connections_min', help: 'Min connections', type: 'gauge' },
  { name: 'hikaricp_connections_timeout_total', help: 'Connection timeout total count', type: 'counter' },
  { name: 'hikaricp_connections_acquire_seconds', help: 'Connection acquire time', type: 'summary' },
  { name: 'hikaricp_connections_acquire_seconds_max', help: 'Connection acquire time', type: 'gauge' },
  { name: 'hikaricp_connections_usage_seconds', help: 'Connection usage time', type: 'summary' },
  { name: 'hikaricp_connections_usage_seconds_max', help: 'Connection usage time', type: 'gauge' },
  { name: 'hikaricp_connections_creation_seconds', help: 'Connection creation time', type: 'summary' },
  { name: 'hikaricp_connections_creation_seconds_max', help: 'Connection creation time', type: 'gauge' },
] as const satisfies readonly FamilySpec[];

/** What the exporter reads from a pool, at scrape time only. */
export interface MeasuredPool {
  stats(): PoolStats;
  recentMaxima(now: number): PoolRecentMaxima;
}

function summary(out: Sample[], name: string, labels: Sample['labels'], count: number, totalMs: number) {
  out.push({ metricName: `${name}_count`, labels, value: count });
  out.push({ metricName: `${name}_sum`, labels, value: totalMs / 1000 });
}

/** One pool's value of one family. */
function collectPool(family: string, pool: MeasuredPool, labels: Sample['labels'], out: Sample[]): void {
  const s = pool.stats();
  switch (family) {
    case 'hikaricp_connections':
      return void out.push({ labels, value: s.total });
    case 'hikaricp_connections_active':
      return void out.push({ labels, value: s.active });
    case 'hikaricp_connections_idle':
      return void out.push({ labels, value: s.idle });
    // HikariCP's "pending threads": callers waiting for a connection (not connections being opened).
    case 'hikaricp_connections_pending':
      return void out.push({ labels, value: s.waiting });
    case 'hikaricp_connections_max':
      return void out.push({ labels, value: s.maxSize });
    case 'hikaricp_connections_min':
      return void out.push({ labels, value: s.minIdle });
    case 'hikaricp_connections_timeout_total':
      return void out.push({ labels, value: s.timeouts });
    case 'hikaricp_connections_acquire_seconds':
      return summary(out, family, labels, s.acquired + s.timeouts, s.waitTimeTotalMs);
    case 'hikaricp_connections_usage_seconds':
      return summary(out, family, labels, s.released, s.usageTimeTotalMs);
    case 'hikaricp_connections_creation_seconds':
      return summary(out, family, labels, s.created, s.creationTimeTotalMs);
  }
  const maxima = pool.recentMaxima(Date.now());
  const ms =
    family === 'hikaricp_connections_acquire_seconds_max'
      ? maxima.acquireMs
      : family === 'hikaricp_connections_usage_seconds_max'
        ? maxima.usageMs
        : maxima.creationMs;
  out.push({ labels, value: ms / 1000 });
}

/**
 * Exports `pools` (pool label → pool) to `metrics.registry`; the label is prefixed with
 * `metrics.name` and a slash when given. Returns the function that stops exporting them.
 */
export function exportPoolMetrics(
  metrics: MetricsOptions,
  pools: ReadonlyMap<string, MeasuredPool>,
): () => void {
  const detach: Array<() => void> = [];
  try {
    for (const [name, pool] of pools) {
      const label = metrics.name === undefined ? name : `${metrics.name}/${name}`;
      const labels = Object.freeze({ pool: label });
      detach.push(
        exportMetrics(metrics.registry, HIKARI_FAMILIES, label, (family, out) =>
          collectPool(family, pool, labels, out),
        ),
      );
    }
  } catch (error) {
    for (const stop of detach) stop();
    throw error;
  }
  return () => {
    for (const stop of detach.splice(0)) stop();
  };
}
