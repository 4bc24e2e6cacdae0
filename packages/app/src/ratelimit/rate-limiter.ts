import { DataLayerError } from '../errors.ts';
import { childLogger, silentLogger, type Logger } from '../logger.ts';
import { CircuitBreaker, type CircuitBreakerOptions } from '../redis/circuit-breaker.ts';
import { Deadlines } from '../redis/deadlines.ts';
import type { RedisArg, RedisLike } from '../redis/redis-like.ts';
import { wrongTypeError, wrongTypeOf } from '../redis/wrong-type.ts';
import { checkMetricsOptions, type MetricsOptions } from '../metrics/metrics-options.ts';
import { exportRateLimitMetrics, type RateLimitCounts } from './ratelimit-metrics.ts';
import { GCRA, MemoryGcra, type GcraDecision } from './gcra.ts';

/** What a limiter does when Redis cannot answer. */
export type RedisDownPolicy = 'fail-open' | 'fail-closed' | 'memory';

/** The quota policy a limiter advertises (the `RateLimit-Policy` field). */
export interface RateLimitPolicy {
  /** The policy's name, the item of both header fields. */
  readonly name: string;
  /** `q`: requests per window (the limit). */
  readonly quota: number;
  /**
   * `w`: the window in whole seconds, rounded up, since the field has no sub-second precision
   * (a 1.5 s window is advertised as 2 s: never a looser policy than the one enforced).
   */
  readonly windowSeconds: number;
}

/** Printable ASCII: what a Structured Field String can hold (RFC 9651 section 3.3.3). */
const SF_STRING = /^[\x20-\x7e]*$/;

export interface RateLimiterOptions {
  redis: RedisLike;
  /** Requests allowed per window on average. */
  limit: number;
  windowMs: number;
  /** Requests allowed at once after a quiet period. Default `limit`. */
  burst?: number;
  /** Default `app:rl:`; give every limiter its own. */
  prefix?: string;
  /**
   * When Redis fails or times out: `memory` (default) applies the same GCRA in process memory,
   * so the limit still holds per instance (each instance then allows up to the full limit);
   * `fail-open` allows every request and must be chosen explicitly; `fail-closed` raises
   * `WARDEN_E_RATE_LIMIT_UNAVAILABLE`. A limiter key of the wrong type is not an outage and
   * raises `WARDEN_E_STORE_WRONG_TYPE` whatever the policy.
   */
  onRedisDown?: RedisDownPolicy;
  /** Names the policy in the `RateLimit-Policy` and `RateLimit` fields. Default `default`. */
  policyName?: string;
  /** Default 250 ms. */
  timeoutMs?: number;
  breaker?: CircuitBreakerOptions;
  logger?: Logger;
  /**
   * Opt-in: exports allowed, limited and fallback decisions and the breaker state
   * (`warden_ratelimit_*`, label `limiter`, default the prefix) to this prom-client registry
   * until `stopMetrics()`.
   */
  metrics?: MetricsOptions;
}

export interface RateLimitResult {
  allowed: boolean;
  /** The burst size: what `RateLimit-Limit` reports. */
  limit: number;
  remaining: number;
  /** Until the key is fully replenished. */
  resetMs: number;
  /** Until a rejected request of the same cost would be allowed; 0 when allowed. */
  retryAfterMs: number;
  /** Who decided: Redis, the in-memory fallback, or the fail-open policy. */
  source: 'redis' | 'memory' | 'fail-open';
  /** The limiter's advertised policy (one shared object). */
  policy: RateLimitPolicy;
}

/**
 * Per-key rate limiting with GCRA, atomic in Redis (one Lua call per request, on standalone and
 * Cluster alike: each key is its own hash slot).
 *
 * @example
 * const limiter = new RateLimiter({ redis, limit: 100, windowMs: 60_000, burst: 20 });
 * const result = await limiter.consume(`login:${ip}`);
 * if (!result.allowed) throw new TooManyRequests(result.retryAfterMs);
 */
export class RateLimiter {
  readonly limit: number;
  readonly windowMs: number;
  readonly burst: number;
  readonly prefix: string;
  readonly onRedisDown: RedisDownPolicy;
  readonly policy: RateLimitPolicy;
  readonly #intervalMs: number;
  readonly #redis: RedisLike;
  /** The `timeoutMs` guard: one shared timer for all calls in flight, not one per call. */
  readonly #deadlines: Deadlines;
  readonly #breaker: CircuitBreaker;
  readonly #memory = new MemoryGcra();
  readonly #log: Logger;
  readonly #counts: RateLimitCounts = { allowed: 0, limited: 0, fallbacks: 0 };
  #unexport: (() => void) | undefined;

  constructor(options: RateLimiterOptions) {
    if (!(options.limit > 0) || !(options.windowMs > 0)) {
      throw new DataLayerError(
        'WARDEN_E_CONFIG_INVALID',
        'ratelimit.limit and ratelimit.windowMs: must be > 0',
      );
    }
    this.#redis = options.redis;
    this.limit = options.limit;
    this.windowMs = options.windowMs;
    this.burst = options.burst ?? options.limit;
    this.prefix = options.prefix ?? 'app:rl:';
    this.onRedisDown = options.onRedisDown ?? 'memory';
    const name = options.policyName ?? 'default';
    if (!SF_STRING.test(name)) {
      throw new DataLayerError('WARDEN_E_CONFIG_INVALID', 'ratelimit.policyName: printable ASCII only', {
        details: { policyName: name },
      });
    }
    this.policy = Object.freeze({
      name,
      quota: options.limit,
      windowSeconds: Math.max(1, Math.ceil(options.windowMs / 1000)),
    });
    this.#intervalMs = options.windowMs / options.limit;
    this.#deadlines = new Deadlines(options.timeoutMs ?? 250);
    this.#breaker = new CircuitBreaker(options.breaker);
    this.#log = childLogger(options.logger ?? silentLogger, { component: 'ratelimit', prefix: this.prefix });
    const metrics = options.metrics && checkMetricsOptions(options.metrics, 'ratelimit.metrics');
    if (metrics) {
      this.#unexport = exportRateLimitMetrics(
        metrics,
        metrics.name ?? this.prefix,
        this.onRedisDown,
        this.#counts,
        () => this.#breaker.state,
      );
    }
  }

  /** Stops exporting this limiter's metrics (for a limiter replaced at runtime). Idempotent. */
  stopMetrics(): void {
    this.#unexport?.();
    this.#unexport = undefined;
  }

  /**
   * Takes `cost` units from `key`'s allowance. Never throws for a rejected request (`allowed`
   * is false); throws `WARDEN_E_RATE_LIMIT_UNAVAILABLE` only with the `fail-closed` policy, and
   * `WARDEN_E_STORE_WRONG_TYPE` when the key holds something else than the limiter's state.
   */
  async consume(key: string, cost = 1): Promise<RateLimitResult> {
    if (!this.#breaker.allow()) return this.#fallback(key, cost, undefined);
    const redisKey = `${this.prefix}{${key}}`;
    let reply: number[];
    try {
      const args: RedisArg[] = [this.#intervalMs, this.burst, cost];
      reply = (await this.#deadlines.race(this.#redis.eval(GCRA, [redisKey], args))) as number[];
      this.#breaker.success();
    } catch (error) {
      this.#breaker.failure();
      this.#log.warn({ err: error }, 'rate limiter could not reach Redis');
      return this.#fallback(key, cost, error);
    }
    const type = wrongTypeOf(reply);
    if (type !== undefined) {
      // Redis answered, so no fallback: limiting in memory would hide the foreign writer forever
      this.#log.error({ key: redisKey, type }, 'rate limiter key holds another type');
      throw wrongTypeError('rate limiter', redisKey, type);
    }
    const allowed = reply[0] === 1;
    if (allowed) this.#counts.allowed++;
    else this.#counts.limited++;
    // the shape #result builds, without the intermediate decision object
    return {
      allowed,
      remaining: Math.max(0, Math.min(this.burst, reply[1]!)),
      resetMs: reply[2]!,
      retryAfterMs: reply[3]!,
      limit: this.burst,
      source: 'redis',
      policy: this.policy,
    };
  }

  #fallback(key: string, cost: number, cause: unknown): RateLimitResult {
    this.#counts.fallbacks++;
    switch (this.onRedisDown) {
      case 'memory':
        return this.#result(this.#memory.consume(key, this.#intervalMs, this.burst, cost), 'memory');
      case 'fail-open':
        return this.#result(
          { allowed: true, remaining: this.burst, resetMs: 0, retryAfterMs: 0 },
          'fail-open',
        );
      case 'fail-closed':
        throw new DataLayerError(
          'WARDEN_E_RATE_LIMIT_UNAVAILABLE',
          'rate limiter unavailable: Redis did not answer',
          {
            cause,
            details: { prefix: this.prefix },
          },
        );
    }
  }

  #result(decision: GcraDecision, source: RateLimitResult['source']): RateLimitResult {
    if (decision.allowed) this.#counts.allowed++;
    else this.#counts.limited++;
    return {
      ...decision,
      remaining: Math.max(0, Math.min(this.burst, decision.remaining)),
      limit: this.burst,
      source,
      policy: this.policy,
    };
  }
}
