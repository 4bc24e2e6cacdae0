import type { Logger } from '../logger.ts';
import type { MetricsOptions } from '../metrics/metrics-options.ts';
import type { BreakerState, CircuitBreakerOptions } from '../redis/circuit-breaker.ts';
import type { RedisLike } from '../redis/redis-like.ts';
import type { Serializer } from './serializer.ts';

export interface CacheOptions {
  redis: RedisLike;
  /** Prefix of every key this cache writes. Default `app:cache:`; must not contain the session prefix. */
  prefix?: string;
  /** Default time to live of entries. Default 1 h. */
  ttlMs?: number;
  serializer?: Serializer;
  /**
   * Upper bound for one Redis round trip before the cache gives up on it and counts an error.
   * Default: the client's own command timeout when it has one (`createRedis` sets 500 ms; no
   * extra timer per call), else 250 ms.
   */
  timeoutMs?: number;
  /** In-process tier, kept coherent across instances over Redis pub/sub. Off by default. */
  l1?: { maxEntries?: number; ttlMs?: number };
  /**
   * How the L1 learns that everything cached may be stale (a failover, a restore cut-over;
   * docs/cache-coherence.md). Only with `l1`. Warden's daemon publishes on `channel` and bumps
   * `generationKey`; give both the names configured in its `cache:` section.
   */
  coherence?: {
    /** Invalidation channel. Default `<prefix>__invalidate`. */
    channel?: string;
    /** Generation key, read every `checkEveryMs`. Default `<prefix>__generation`. */
    generationKey?: string;
    /**
     * Interval of generation reads; a stale L1 serves at most twice this long after a bump that
     * this instance missed. Default: 1 s or the L1 TTL when shorter; at most the L1 TTL.
     */
    checkEveryMs?: number;
  };
  /**
   * Cross-instance stampede protection: the first instance to miss takes a short Redis lock and
   * loads; the others poll for its result up to `waitMs`, then load themselves. Off by default.
   */
  lock?: { ttlMs?: number; waitMs?: number; pollMs?: number };
  breaker?: CircuitBreakerOptions;
  logger?: Logger;
  /**
   * Opt-in: exports hits, misses, loads, errors and the breaker state (`warden_cache_*`, label
   * `cache`, default the prefix) to this prom-client registry until `stop()`.
   */
  metrics?: MetricsOptions;
}

export interface GetOrSetOptions {
  ttlMs?: number;
  /** Tags (entities, queries) whose invalidation deletes this entry, e.g. `client:42`. */
  tags?: readonly string[];
}

export interface CacheStats {
  /** Reads answered from the cache, L1 included. */
  hits: number;
  l1Hits: number;
  misses: number;
  /** Loader calls. */
  loads: number;
  /** Redis operations that failed or timed out, and entries that could not be deserialized. */
  errors: number;
  breaker: BreakerState;
  breakerOpens: number;
}
