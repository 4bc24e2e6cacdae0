import { breakerStateSamples } from '../metrics/breaker-state.ts';
import { exportMetrics, type FamilySpec } from '../metrics/metric-family.ts';
import type { MetricsOptions } from '../metrics/metrics-options.ts';
import type { CacheStats } from './cache.ts';

export const CACHE_FAMILIES = [
  { name: 'warden_cache_hits_total', help: 'Reads answered from the cache, by tier', type: 'counter' },
  { name: 'warden_cache_misses_total', help: 'Reads the cache could not answer', type: 'counter' },
  { name: 'warden_cache_loads_total', help: 'Loader calls', type: 'counter' },
  {
    name: 'warden_cache_errors_total',
    help: 'Redis calls that failed or timed out, and entries that could not be read',
    type: 'counter',
  },
  {
    name: 'warden_cache_breaker_state',
    help: 'Circuit breaker state (1 for the current one)',
    type: 'gauge',
  },
  { name: 'warden_cache_breaker_opens_total', help: 'Times the circuit breaker opened', type: 'counter' },
] as const satisfies readonly FamilySpec[];

/** Exports one cache, labelled `cache="<name>"`; returns the function that stops it. */
export function exportCacheMetrics(
  metrics: MetricsOptions,
  name: string,
  stats: () => CacheStats,
): () => void {
  const labels = Object.freeze({ cache: name });
  const local = Object.freeze({ cache: name, tier: 'local' });
  const redis = Object.freeze({ cache: name, tier: 'redis' });
  return exportMetrics(metrics.registry, CACHE_FAMILIES, name, (family, out) => {
    const s = stats();
    switch (family) {
      case 'warden_cache_hits_total':
        out.push({ labels: local, value: s.l1Hits }, { labels: redis, value: s.hits - s.l1Hits });
        return;
      case 'warden_cache_misses_total':
        return void out.push({ labels, value: s.misses });
      case 'warden_cache_loads_total':
        return void out.push({ labels, value: s.loads });
      case 'warden_cache_errors_total':
        return void out.push({ labels, value: s.errors });
      case 'warden_cache_breaker_state':
        return breakerStateSamples(out, labels, s.breaker);
      case 'warden_cache_breaker_opens_total':
        return void out.push({ labels, value: s.breakerOpens });
    }
  });
}
