import type { BreakerState } from '../redis/circuit-breaker.ts';
import type { Sample } from './metric-family.ts';

const STATES: readonly BreakerState[] = ['closed', 'open', 'half-open'];

/**
 * A circuit breaker's state as one series per state, 1 for the current one and 0 for the others
 * (the enum pattern: `max by (cache) (warden_cache_breaker_state{state="open"})` needs no
 * knowledge of numeric codes).
 */
export function breakerStateSamples(
  out: Sample[],
  labels: Readonly<Record<string, string>>,
  current: BreakerState,
): void {
  for (const state of STATES) out.push({ labels: { ...labels, state }, value: state === current ? 1 : 0 });
}
