import { breakerStateSamples } from '../metrics/breaker-state.ts';
import { exportMetrics, type FamilySpec } from '../metrics/metric-family.ts';
import type { MetricsOptions } from '../metrics/metrics-options.ts';
import type { BreakerState } from '../redis/circuit-breaker.ts';
import type { RedisDownPolicy } from './rate-limiter.ts';

export const RATELIMIT_FAMILIES = [
  {
    name: 'warden_ratelimit_requests_total',
    help: 'Requests decided, by result (fallback decisions included)',
    type: 'counter',
  },
  {
    name: 'warden_ratelimit_fallbacks_total',
    help: 'Requests decided without Redis, by the onRedisDown policy that decided them',
    type: 'counter',
  },
  {
    name: 'warden_ratelimit_breaker_state',
    help: 'Circuit breaker state (1 for the current one)',
    type: 'gauge',
  },
] as const satisfies readonly FamilySpec[];

/** The limiter's plain counters, bumped per request and read only when scraped. */
export interface RateLimitCounts {
  allowed: number;
  limited: number;
  fallbacks: number;
}

/** Exports one limiter, labelled `limiter="<name>"`; returns the function that stops it. */
export function exportRateLimitMetrics(
  metrics: MetricsOptions,
  name: string,
  policy: RedisDownPolicy,
  counts: Readonly<RateLimitCounts>,
  breaker: () => BreakerState,
): () => void {
  const labels = Object.freeze({ limiter: name });
  const allowed = Object.freeze({ limiter: name, result: 'allowed' });
  const limited = Object.freeze({ limiter: name, result: 'limited' });
  const fallback = Object.freeze({ limiter: name, policy });
  return exportMetrics(metrics.registry, RATELIMIT_FAMILIES, name, (family, out) => {
    switch (family) {
      case 'warden_ratelimit_requests_total':
        out.push({ labels: allowed, value: counts.allowed }, { labels: limited, value: counts.limited });
        return;
      case 'warden_ratelimit_fallbacks_total':
        return void out.push({ labels: fallback, value: counts.fallbacks });
      case 'warden_ratelimit_breaker_state':
        return breakerStateSamples(out, labels, breaker());
    }
  });
}
