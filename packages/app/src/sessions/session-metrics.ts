import { exportMetrics, type FamilySpec } from '../metrics/metric-family.ts';
import type { MetricsOptions } from '../metrics/metrics-options.ts';

/**
 * Operations, not a live-session gauge: sessions end by Redis TTL without telling anyone, so a
 * count kept in process (or in a Redis counter) drifts, and the exact count is a SCAN over every
 * master (`SessionStore.count()`, O(sessions)) — too dear for every scrape. Logins per second,
 * expired-cookie rates and store outages are what the operations show.
 */
export const SESSION_FAMILIES = [
  { name: 'warden_sessions_created_total', help: 'Sessions created', type: 'counter' },
  {
    name: 'warden_sessions_loads_total',
    help: 'Session loads, by whether a live session was found',
    type: 'counter',
  },
  { name: 'warden_sessions_ended_total', help: 'Live sessions ended by destroy or revoke', type: 'counter' },
  {
    name: 'warden_sessions_errors_total',
    help: 'Operations refused because Redis was unavailable (sessions fail closed)',
    type: 'counter',
  },
] as const satisfies readonly FamilySpec[];

/** The store's plain counters; `errors` by operation name. */
export interface SessionCounts {
  created: number;
  found: number;
  missing: number;
  ended: number;
  readonly errors: Map<string, number>;
}

/** Exports one session store, labelled `store="<name>"`; returns the function that stops it. */
export function exportSessionMetrics(
  metrics: MetricsOptions,
  name: string,
  counts: SessionCounts,
): () => void {
  const labels = Object.freeze({ store: name });
  const found = Object.freeze({ store: name, result: 'found' });
  const missing = Object.freeze({ store: name, result: 'missing' });
  return exportMetrics(metrics.registry, SESSION_FAMILIES, name, (family, out) => {
    switch (family) {
      case 'warden_sessions_created_total':
        return void out.push({ labels, value: counts.created });
      case 'warden_sessions_loads_total':
        out.push({ labels: found, value: counts.found }, { labels: missing, value: counts.missing });
        return;
      case 'warden_sessions_ended_total':
        return void out.push({ labels, value: counts.ended });
      case 'warden_sessions_errors_total':
        for (const [operation, value] of counts.errors)
          out.push({ labels: { store: name, operation }, value });
        return;
    }
  });
}
