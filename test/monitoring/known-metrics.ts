import { readFile } from 'node:fs/promises';

/**
 * The single source of truth for the metric names Warden's side exposes, as far as the rules
 * and dashboards may use them.
 *
 * Warden's own (`warden_*`) are read from docs/metrics.md, whose table a test of the metrics
 * feature keeps equal to the daemon's real `/metrics` output.
 */
export async function wardenMetricNames(docsPath: string): Promise<Set<string>> {
  const text = await readFile(docsPath, 'utf8');
  const names = new Set<string>();
  for (const match of text.matchAll(/^\|\s*`(warden_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|/gm)) {
    names.add(match[1]!);
    if (match[2] === 'histogram')
      for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${match[1]}${suffix}`);
  }
  return names;
}

/**
 * The pool metrics of the service library (`@warden/app`, opt-in `metrics: { registry }`), under
 * the names Micrometer's HikariCP binder exports (issue 14; packages/app/src/db/pool-metrics.ts
 * on the branch that adds them). Summaries expose `_sum` and `_count` series.
 */
const HIKARICP_GAUGES = [
  'hikaricp_connections',
  'hikaricp_connections_active',
  'hikaricp_connections_idle',
  'hikaricp_connections_pending',
  'hikaricp_connections_max',
  'hikaricp_connections_min',
  'hikaricp_connections_acquire_seconds_max',
  'hikaricp_connections_usage_seconds_max',
  'hikaricp_connections_creation_seconds_max',
];
const HIKARICP_SUMMARIES = [
  'hikaricp_connections_acquire_seconds',
  'hikaricp_connections_usage_seconds',
  'hikaricp_connections_creation_seconds',
];
/**
 * Cache, sessions and rate limiter of the service library (the table in docs/service-library.md
 * on the branch that adds them; prefixed `warden_` but not the daemon's).
 */
const DATA_LAYER_METRICS = [
  'warden_cache_hits_total',
  'warden_cache_misses_total',
  'warden_cache_loads_total',
  'warden_cache_errors_total',
  'warden_cache_breaker_state',
  'warden_cache_breaker_opens_total',
  'warden_sessions_created_total',
  'warden_sessions_loads_total',
  'warden_sessions_ended_total',
  'warden_sessions_errors_total',
  'warden_ratelimit_requests_total',
  'warden_ratelimit_fallbacks_total',
  'warden_ratelimit_breaker_state',
];
/** Whether a name belongs to the service library rather than the daemon. */
export const isServiceLibraryMetric = (name: string): boolean =>
  /^(hikaricp_|warden_(cache|sessions|ratelimit)_)/.test(name);
export const SERVICE_LIBRARY_METRICS: ReadonlySet<string> = new Set([
  ...DATA_LAYER_METRICS,
  ...HIKARICP_GAUGES,
  'hikaricp_connections_timeout_total',
  ...HIKARICP_SUMMARIES.flatMap((name) => [`${name}_sum`, `${name}_count`]),
]);

/** Series Prometheus itself writes for every target. */
export const PROMETHEUS_SERIES: ReadonlySet<string> = new Set(['up']);
