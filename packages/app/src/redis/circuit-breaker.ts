export type BreakerState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the breaker. Default 5. */
  failureThreshold?: number;
  /** How long the breaker stays open before letting one trial call through. Default 5000 ms. */
  openMs?: number;
  /** Clock, for tests of the state machine only. */
  now?: () => number;
}

/**
 * A consecutive-failure circuit breaker. While open, `allow()` is false and callers skip the
 * remote call entirely, so a dead or slow Redis costs nothing per request; after `openMs` one
 * trial call is allowed (half-open) and its outcome closes or re-opens the breaker.
 *
 * @example
 * const breaker = new CircuitBreaker({ failureThreshold: 3, openMs: 1000 });
 * if (breaker.allow()) {
 *   try { await redis.get(key); breaker.success(); } catch { breaker.failure(); }
 * }
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #openMs: number;
  readonly #now: () => number;
  #failures = 0;
  #openedAt = 0;
  #state: BreakerState = 'closed';
  #trialInFlight = false;
  #opens = 0;

  constructor(options: CircuitBreakerOptions = {}) {
    this.#threshold = options.failureThreshold ?? 5;
    this.#openMs = options.openMs ?? 5000;
    this.#now = options.now ?? Date.now;
  }

  get state(): BreakerState {
    if (this.#state === 'open' && this.#now() - this.#openedAt >= this.#openMs) return 'half-open';
    return this.#state;
  }

  /** How many times the breaker has opened since creation. */
  get opens(): number {
    return this.#opens;
  }

  allow(): boolean {
    if (this.#state === 'closed') return true;
    const state = this.state;
    if (state === 'closed') return true;
    if (state === 'half-open' && !this.#trialInFlight) {
      this.#state = 'half-open';
      this.#trialInFlight = true;
      return true;
    }
    return false;
  }

  success(): void {
    if (this.#state === 'closed' && this.#failures === 0) return;
    this.#failures = 0;
    this.#trialInFlight = false;
    this.#state = 'closed';
  }

  failure(): void {
    this.#failures++;
    if (this.#state === 'half-open' || this.#failures >= this.#threshold) {
      if (this.#state !== 'open') this.#opens++;
      this.#state = 'open';
      this.#openedAt = this.#now();
      this.#trialInFlight = false;
    }
  }
}
