import type { Logger } from '../logger.ts';
import type { DbConnection } from './driver.ts';
import type { LeakStackMode } from './leak-detector.ts';

/** Sizing and timing of one pool; the meaning of each field follows HikariCP. */
export interface PoolSettings {
  /** Idle connections kept warm: pre-filled at start and refilled after every close. */
  readonly minIdle: number;
  readonly maxSize: number;
  /** Idle connections above `minIdle` are closed after this long unused. */
  readonly idleTimeoutMs: number;
  /** How long a caller waits for a connection before `WARDEN_E_POOL_TIMEOUT`. */
  readonly connectionTimeoutMs: number;
  /** Connections are retired after this age (minus up to 2.5 % jitter, so they do not expire together). */
  readonly maxLifetimeMs: number;
  /** A connection held longer than this logs a warning with the stack that took it; 0 disables. */
  readonly leakDetectionThresholdMs: number;
  /**
   * Where a leak warning's acquiring stack comes from. Capturing a stack costs 3–6 µs of CPU per
   * checkout (V8 walks and summarizes the caller's frames), a quarter of a pooled `SELECT 1`:
   * - `'per-statement'` (default): a checkout for one statement (`query()`; the router holds it
   *   exactly as long as the statement runs) reuses the stack captured the first time that SQL
   *   text was checked out in this pool (up to `STATEMENT_STACKS` in leak-detector.ts, 1 000
   *   texts); a checkout handed to your code (`transaction()`, where real leaks happen) captures
   *   its own stack.
   * - `'every-checkout'`: every checkout captures its own stack (HikariCP's behaviour).
   * - `'off'`: warnings carry the pool, the time held and the statement, no stack.
   */
  readonly leakDetectionStacks: LeakStackMode;
  /** A connection idle longer than this is checked with `SELECT 1` before it is handed out. */
  readonly validateAfterIdleMs: number;
  readonly validationTimeoutMs: number;
}

export interface PoolOptions extends PoolSettings {
  readonly name: string;
  /** Opens one new session (host discovery included). */
  readonly open: () => Promise<DbConnection>;
  readonly logger: Logger;
  /** Default: a quarter of the shorter of idle timeout and lifetime, between 50 ms and 30 s. */
  readonly housekeepingIntervalMs?: number;
}

/** A point-in-time view of a pool. Times in milliseconds. */
export interface PoolStats {
  readonly name: string;
  readonly total: number;
  readonly active: number;
  readonly idle: number;
  /** Callers waiting for a connection right now. */
  readonly waiting: number;
  readonly pending: number;
  readonly minIdle: number;
  readonly maxSize: number;
  readonly acquired: number;
  readonly timeouts: number;
  readonly created: number;
  readonly destroyed: number;
  readonly creationFailures: number;
  readonly validationFailures: number;
  readonly leaksDetected: number;
  /**
   * Time callers waited for a connection, summed over all checkouts and timed-out attempts
   * (`acquired + timeouts` waits; sub-millisecond precision except for timeouts).
   */
  readonly waitTimeTotalMs: number;
  readonly waitTimeMaxMs: number;
  /** Checkouts given back. */
  readonly released: number;
  /** Time connections were on loan, summed over the checkouts given back (millisecond clock, as HikariCP). */
  readonly usageTimeTotalMs: number;
  /** Time spent opening the connections counted in `created`. */
  readonly creationTimeTotalMs: number;
}

/** The largest acquire, usage and creation times of the last minute or so (Micrometer's `_max`). */
export interface PoolRecentMaxima {
  readonly acquireMs: number;
  readonly usageMs: number;
  readonly creationMs: number;
}

/** A connection on loan from a pool; give it back with `release()` exactly once. */
export interface Lease {
  readonly connection: DbConnection;
  /** Returns the connection; `destroy` closes it instead (its state is unknown). */
  release(destroy?: boolean): void;
}
