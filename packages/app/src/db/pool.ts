import { DataLayerError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { DbConnection } from './driver.ts';
import { connectError } from './failure.ts';
import { WindowMax } from '../metrics/window-max.ts';
import { LeakDetector, type LeakWatched } from './leak-detector.ts';
import type { Lease, PoolOptions, PoolRecentMaxima, PoolSettings, PoolStats } from './pool-types.ts';

export type { LeakStackMode } from './leak-detector.ts';
export type { Lease, PoolOptions, PoolRecentMaxima, PoolSettings, PoolStats } from './pool-types.ts';

interface Entry extends LeakWatched {
  readonly connection: DbConnection;
  readonly createdAt: number;
  lastUsedAt: number;
  leased: boolean;
  retire: boolean;
  lifetimeTimer: NodeJS.Timeout | undefined;
}

interface Waiter {
  readonly since: number;
  readonly deadline: number;
  readonly resolve: (entry: Entry) => void;
  readonly reject: (error: unknown) => void;
}

// Refill after failed connects backs off: 250 ms, 500 ms, 1 s, … capped at 10 s, ±20 % jitter.
const REFILL_BASE_MS = 250;
const REFILL_MAX_MS = 10_000;
const CLOSE_GRACE_MS = 5_000;

/** A checkout: a class, so a lease costs one small object and no closure. */
class PoolLease implements Lease {
  readonly connection: DbConnection;
  readonly #entry: Entry;
  readonly #giveBack: (entry: Entry, destroy: boolean) => void;
  #released = false;

  constructor(entry: Entry, giveBack: (entry: Entry, destroy: boolean) => void) {
    this.connection = entry.connection;
    this.#entry = entry;
    this.#giveBack = giveBack;
  }

  release(destroy = false): void {
    if (this.#released) return;
    this.#released = true;
    this.#giveBack(this.#entry, destroy);
  }
}

/**
 * A connection pool with HikariCP semantics, written on top of single driver sessions because
 * `pg.Pool` has no minimum idle, no lifetime jitter and no leak detection.
 * No I/O until `start()`; `start()` and `close()` are idempotent.
 */
export class ConnectionPool {
  readonly name: string;
  private readonly settings: PoolSettings;
  private readonly open: () => Promise<DbConnection>;
  private readonly logger: Logger;
  private readonly housekeepingIntervalMs: number;

  private readonly all = new Set<Entry>();
  /** Idle connections; the most recently used at the end (LIFO keeps few warm, lets others expire). */
  private readonly idle: Entry[] = [];
  private readonly waiters: Waiter[] = [];
  private pending = 0;
  private started = false;
  private closing: Promise<void> | undefined;
  private housekeeper: NodeJS.Timeout | undefined;
  private refillTimer: NodeJS.Timeout | undefined;
  /** One timer for the oldest waiter's deadline (waiters are FIFO with equal timeouts), not one each. */
  private waiterTimer: NodeJS.Timeout | undefined;
  private readonly leaks: LeakDetector;
  /** What every lease calls on release: one function per pool instead of a closure per checkout. */
  private readonly giveBackFn = (entry: Entry, destroy: boolean) => this.giveBack(entry, destroy);
  private refillFailures = 0;
  private lastCreateError: DataLayerError | undefined;
  private counters = {
    acquired: 0,
    timeouts: 0,
    created: 0,
    destroyed: 0,
    creationFailures: 0,
    validationFailures: 0,
    leaksDetected: 0,
    waitTimeTotalMs: 0,
    waitTimeMaxMs: 0,
    released: 0,
    usageTimeTotalMs: 0,
    creationTimeTotalMs: 0,
  };
  private readonly acquireMax: WindowMax;
  private readonly usageMax: WindowMax;
  private readonly creationMax: WindowMax;

  constructor(options: PoolOptions) {
    this.name = options.name;
    this.settings = options;
    this.open = options.open;
    this.logger = options.logger;
    this.housekeepingIntervalMs =
      options.housekeepingIntervalMs ??
      Math.min(30_000, Math.max(50, Math.min(options.idleTimeoutMs, options.maxLifetimeMs) / 4));
    const now = Date.now();
    this.acquireMax = new WindowMax(now);
    this.usageMax = new WindowMax(now);
    this.creationMax = new WindowMax(now);
    this.leaks = new LeakDetector({
      pool: this.name,
      thresholdMs: options.leakDetectionThresholdMs,
      stacks: options.leakDetectionStacks,
      logger: this.logger,
      onLeak: () => {
        this.counters.leaksDetected += 1;
      },
    });
  }

  /** Starts housekeeping and pre-fills `minIdle` connections; resolves once those attempts settle. */
  async start(): Promise<void> {
    if (this.started || this.closing) return;
    this.started = true;
    this.housekeeper = setInterval(() => this.housekeep(), this.housekeepingIntervalMs);
    this.housekeeper.unref();
    this.leaks.start(this.all);
    await Promise.all(this.fill());
  }

  /**
   * The synchronous fast path of {@link acquire}: a started pool's idle connection that needs no
   * validation, without a promise or a microtask hop; undefined when the caller must `acquire()`.
   * `statement` is the one SQL text this checkout runs, when the caller holds the connection for
   * just that statement: leak warnings name it (see {@link PoolSettings.leakDetectionStacks}).
   */
  tryAcquire(statement?: string): Lease | undefined {
    if (!this.started || this.closing) return undefined;
    const now = Date.now();
    for (;;) {
      const entry = this.idle.at(-1);
      if (!entry) return undefined;
      if (entry.connection.broken || entry.retire) {
        this.idle.pop();
        this.destroy(entry);
        this.fill();
        continue;
      }
      // Idle past the validation threshold: acquire() validates it.
      if (now - entry.lastUsedAt > this.settings.validateAfterIdleMs) return undefined;
      this.idle.pop();
      return this.lease(entry, now, 0, ConnectionPool.prototype.tryAcquire, statement);
    }
  }

  /** Borrows a connection, waiting at most `connectionTimeoutMs`; `statement` as in {@link tryAcquire}. */
  async acquire(statement?: string): Promise<Lease> {
    const since = Date.now();
    // The wait is timed on the monotonic sub-millisecond clock (HikariCP times it in nanoseconds).
    const started = performance.now();
    if (!this.started) await this.start();
    for (;;) {
      if (this.closing) throw this.closedError();
      const entry = this.idle.pop();
      if (!entry) break;
      const usable = this.usable(entry);
      if (usable === true || (usable !== false && (await usable))) {
        return this.lease(
          entry,
          Date.now(),
          performance.now() - started,
          ConnectionPool.prototype.acquire,
          statement,
        );
      }
    }
    const entry = await new Promise<Entry>((resolve, reject) => {
      this.waiters.push({ since, deadline: since + this.settings.connectionTimeoutMs, resolve, reject });
      this.armWaiterTimer();
      if (this.waiters.length > this.pending && this.all.size + this.pending < this.settings.maxSize) {
        void this.create();
      }
    });
    return this.lease(
      entry,
      Date.now(),
      performance.now() - started,
      ConnectionPool.prototype.acquire,
      statement,
    );
  }

  /** Closes idle connections now and the borrowed ones when they come back (failover, role change). */
  evictAll(): void {
    for (const entry of this.all) entry.retire = true;
    for (const entry of this.idle.splice(0)) this.destroy(entry);
    this.fill();
  }

  /** See {@link PoolRecentMaxima}; `now` is `Date.now()`. */
  recentMaxima(now: number): PoolRecentMaxima {
    return {
      acquireMs: this.acquireMax.read(now),
      usageMs: this.usageMax.read(now),
      creationMs: this.creationMax.read(now),
    };
  }

  stats(): PoolStats {
    const idle = this.idle.length;
    return {
      name: this.name,
      total: this.all.size,
      active: this.all.size - idle,
      idle,
      waiting: this.waiters.length,
      pending: this.pending,
      minIdle: this.settings.minIdle,
      maxSize: this.settings.maxSize,
      ...this.counters,
    };
  }

  /** Rejects waiters, closes idle connections, and waits (5 s at most) for borrowed ones. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    clearInterval(this.housekeeper);
    clearTimeout(this.refillTimer);
    clearTimeout(this.waiterTimer);
    this.leaks.stop();
    for (const waiter of this.waiters.splice(0)) waiter.reject(this.closedError());
    for (const entry of this.idle.splice(0)) this.destroy(entry);
    const deadline = Date.now() + CLOSE_GRACE_MS;
    while ((this.all.size > 0 || this.pending > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const entry of this.all) this.destroy(entry);
  }

  private closedError(): DataLayerError {
    return new DataLayerError('WARDEN_E_POOL_CLOSED', `pool "${this.name}" is closed`, {
      details: { pool: this.name },
    });
  }

  /**
   * Checks a connection taken from the idle list; closes it when it is not fit to hand out.
   * Answers synchronously unless the connection needs validation (idle past the threshold).
   */
  private usable(entry: Entry): boolean | Promise<boolean> {
    if (entry.connection.broken || entry.retire) {
      this.destroy(entry);
      this.fill();
      return false;
    }
    if (Date.now() - entry.lastUsedAt <= this.settings.validateAfterIdleMs) return true;
    return this.validated(entry);
  }

  private async validated(entry: Entry): Promise<boolean> {
    entry.leased = true; // nobody else may take it while it is being validated
    const ok = await this.validate(entry.connection);
    entry.leased = false;
    if (ok && !this.closing) return true;
    if (!ok) {
      this.counters.validationFailures += 1;
      this.logger.debug({ pool: this.name }, 'connection failed validation; closed');
    }
    this.destroy(entry);
    this.fill();
    return false;
  }

  private async validate(connection: DbConnection): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), this.settings.validationTimeoutMs);
    });
    const check = connection.query('SELECT 1').then(
      () => true,
      () => false,
    );
    try {
      return await Promise.race([check, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Marks `entry` as on loan. `anchor` is the public method that took it: the acquiring stack
   * starts at its caller, so the pool's own frames neither cost capture time nor use up
   * `Error.stackTraceLimit`.
   */
  private lease(
    entry: Entry,
    now: number,
    waitedMs: number,
    anchor: (...args: never[]) => unknown,
    statement: string | undefined,
  ): Lease {
    entry.leased = true;
    entry.lastUsedAt = now;
    this.counters.acquired += 1;
    // The synchronous fast path waits 0: nothing to add, the maxima cannot grow.
    if (waitedMs > 0) {
      this.counters.waitTimeTotalMs += waitedMs;
      if (waitedMs > this.counters.waitTimeMaxMs) this.counters.waitTimeMaxMs = waitedMs;
      this.acquireMax.record(waitedMs, now);
    }
    if (this.leaks.enabled) this.leaks.leased(entry, now, anchor, statement);
    return new PoolLease(entry, this.giveBackFn);
  }

  private giveBack(entry: Entry, destroy: boolean): void {
    this.leaks.returned(entry);
    entry.leased = false;
    const now = Date.now();
    // lastUsedAt is when the lease began: the difference is HikariCP's usage time.
    const held = now - entry.lastUsedAt;
    this.counters.released += 1;
    if (held > 0) {
      this.counters.usageTimeTotalMs += held;
      this.usageMax.record(held, now);
    }
    entry.lastUsedAt = now;
    if (destroy || entry.retire || entry.connection.broken || this.closing) {
      this.destroy(entry);
      if (!this.closing) this.fill();
      return;
    }
    this.offer(entry);
  }

  /** Hands a ready connection to the longest waiter, or parks it as idle. */
  private offer(entry: Entry): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve(entry);
    } else {
      this.idle.push(entry);
    }
  }

  private armWaiterTimer(): void {
    const head = this.waiters[0];
    if (this.waiterTimer || !head) return;
    this.waiterTimer = setTimeout(
      () => {
        this.waiterTimer = undefined;
        const now = Date.now();
        while (this.waiters[0] && this.waiters[0].deadline <= now) this.timeOut(this.waiters.shift()!);
        this.armWaiterTimer();
      },
      Math.max(0, head.deadline - Date.now()),
    );
    this.waiterTimer.unref();
  }

  private timeOut(waiter: Waiter): void {
    this.counters.timeouts += 1;
    const now = Date.now();
    const waited = now - waiter.since;
    // As HikariCP's recordBorrowTimeoutStats: a timed-out wait is an acquire time too.
    this.counters.waitTimeTotalMs += waited;
    if (waited > this.counters.waitTimeMaxMs) this.counters.waitTimeMaxMs = waited;
    this.acquireMax.record(waited, now);
    const state = this.stats();
    waiter.reject(
      new DataLayerError(
        'WARDEN_E_POOL_TIMEOUT',
        `pool "${this.name}": no connection within ${waited} ms ` +
          `(total ${state.total}/${state.maxSize}, active ${state.active}, idle ${state.idle}, waiting ${state.waiting + 1})`,
        {
          hint: 'Raise the pool size or connection timeout, or look for a leak warning in the log.',
          details: { pool: this.name, waitedMs: waited, state },
          cause: this.lastCreateError,
        },
      ),
    );
  }

  /** Starts enough connects to bring idle up to `minIdle` within `maxSize`; returns them. */
  private fill(): Array<Promise<void>> {
    if (!this.started || this.closing || this.refillTimer) return [];
    const { minIdle, maxSize } = this.settings;
    const wanted = Math.min(maxSize - this.all.size, minIdle - this.idle.length) - this.pending;
    const attempts: Array<Promise<void>> = [];
    for (let i = 0; i < wanted; i += 1) attempts.push(this.create());
    return attempts;
  }

  private async create(): Promise<void> {
    this.pending += 1;
    const started = performance.now();
    let connection: DbConnection;
    try {
      connection = await this.open();
    } catch (error) {
      this.pending -= 1;
      this.createFailed(error);
      return;
    }
    this.pending -= 1;
    const creationMs = performance.now() - started;
    this.refillFailures = 0;
    this.lastCreateError = undefined;
    if (this.closing) {
      void connection.close();
      return;
    }
    const now = Date.now();
    const entry: Entry = {
      connection,
      createdAt: now,
      lastUsedAt: now,
      leased: false,
      retire: false,
      lifetimeTimer: undefined,
      leasedAt: 0,
      statement: undefined,
      acquiredBy: undefined,
      stackHolder: undefined,
      leakReported: false,
    };
    const lifetime = this.settings.maxLifetimeMs;
    if (lifetime > 0) {
      const jitter = Math.random() * lifetime * 0.025;
      entry.lifetimeTimer = setTimeout(() => this.retire(entry), lifetime - jitter);
      entry.lifetimeTimer.unref();
    }
    connection.onBroken(() => {
      if (!entry.leased && this.all.has(entry)) {
        this.destroy(entry);
        this.fill();
      }
    });
    this.all.add(entry);
    this.counters.created += 1;
    this.counters.creationTimeTotalMs += creationMs;
    this.creationMax.record(creationMs, now);
    this.offer(entry);
  }

  private createFailed(error: unknown): void {
    const wrapped = error instanceof DataLayerError ? error : connectError(error, this.name);
    this.lastCreateError = wrapped;
    this.counters.creationFailures += 1;
    this.refillFailures += 1;
    const log = { pool: this.name, code: wrapped.code, err: wrapped.message, failures: this.refillFailures };
    if (this.refillFailures === 1) this.logger.warn(log, 'cannot open a connection');
    else this.logger.debug(log, 'cannot open a connection');
    // With no connection in or coming to the pool nobody can release one: fail waiters now
    // with the typed cause instead of letting them sit out the whole connection timeout.
    if (this.all.size === 0 && this.pending === 0) {
      for (const waiter of this.waiters.splice(0)) waiter.reject(wrapped);
    }
    if (this.closing || this.refillTimer) return;
    const delay =
      Math.min(REFILL_MAX_MS, REFILL_BASE_MS * 2 ** (this.refillFailures - 1)) * (0.8 + Math.random() * 0.4);
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.fill();
      if (this.waiters.length > this.pending && this.all.size + this.pending < this.settings.maxSize)
        void this.create();
    }, delay);
    this.refillTimer.unref();
  }

  private retire(entry: Entry): void {
    entry.retire = true;
    if (entry.leased || !this.all.has(entry)) return;
    this.destroy(entry);
    this.logger.debug(
      { pool: this.name, ageMs: Date.now() - entry.createdAt },
      'connection retired (max lifetime)',
    );
    this.fill();
  }

  private housekeep(): void {
    const { minIdle, idleTimeoutMs } = this.settings;
    const now = Date.now();
    // Oldest-used first: they sit at the start of the LIFO list.
    let removable = this.idle.length - minIdle;
    for (const entry of [...this.idle]) {
      if (removable <= 0) break;
      if (now - entry.lastUsedAt > idleTimeoutMs) {
        this.destroy(entry);
        removable -= 1;
      }
    }
    this.fill();
  }

  private destroy(entry: Entry): void {
    if (!this.all.delete(entry)) return;
    const index = this.idle.indexOf(entry);
    if (index >= 0) this.idle.splice(index, 1);
    clearTimeout(entry.lifetimeTimer);
    this.counters.destroyed += 1;
    void entry.connection.close();
  }
}
