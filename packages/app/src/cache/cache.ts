import { DataLayerError } from '../errors.ts';
import { childLogger, silentLogger, type Logger } from '../logger.ts';
import { CircuitBreaker } from '../redis/circuit-breaker.ts';
import { Deadlines, type DeadlineCall } from '../redis/deadlines.ts';
import { escapeGlob } from '../redis/glob.ts';
import { cancellable, type CancellableGet, type RedisLike } from '../redis/redis-like.ts';
import { checkMetricsOptions, type MetricsOptions } from '../metrics/metrics-options.ts';
import { exportCacheMetrics } from './cache-metrics.ts';
import type { CacheOptions, CacheStats, GetOrSetOptions } from './cache-options.ts';
import { GenerationWatch } from './generation-watch.ts';
import { InvalidationBus, type InvalidationMessage } from './invalidation-bus.ts';
import { LocalTier } from './local-tier.ts';
import { MISS } from './miss.ts';
import { jsonSerializer, type Serializer } from './serializer.ts';
import { SingleFlight } from './single-flight.ts';
import { StampedeLock } from './stampede-lock.ts';
import { CacheTags } from './tags.ts';

export type { CacheOptions, CacheStats, GetOrSetOptions } from './cache-options.ts';

/** The default of `getOrSet`'s options: shared, so a call without options allocates none. */
const NO_OPTIONS: GetOrSetOptions = Object.freeze({});

/**
 * Read-through cache over Redis, never the system of record: when Redis is down or slow, calls
 * get slower (the loader runs) but never fail because of Redis. Explicit invalidation (`delete`,
 * `invalidateTags`, `clear`) does raise `WARDEN_E_CACHE_UNAVAILABLE`, since a caller that writes
 * must know when stale entries may survive.
 *
 * @example
 * const cache = new Cache({ redis: createRedis({ port: 6379 }), l1: { maxEntries: 10_000 } });
 * await cache.start();
 * const client = await cache.getOrSet(`client:${id}`, () => db.findClient(id), { tags: [`client:${id}`] });
 * await cache.invalidateTags([`client:${id}`]); // after a write
 */
export class Cache {
  readonly prefix: string;
  readonly #redis: RedisLike;
  readonly #ttlMs: number;
  readonly #serializer: Serializer;
  readonly #timeoutMs: number;
  /** The `timeoutMs` guard of read-through calls: one shared timer, not one per call. */
  readonly #deadlines: Deadlines;
  readonly #l1: LocalTier | undefined;
  readonly #lock: StampedeLock | undefined;
  readonly #breaker: CircuitBreaker;
  readonly #log: Logger;
  /** Loader calls in progress per key: concurrent misses of a key share one (stampede protection). */
  readonly #loading = new SingleFlight();
  readonly #bus: InvalidationBus;
  readonly #tags: CacheTags;
  readonly #generation: GenerationWatch | undefined;
  readonly #generationKey: string;
  #unsubscribe: (() => Promise<void>) | undefined;
  /** Bumped on every invalidation received, so a read racing an invalidation skips L1. */
  #epoch = 0;
  /**
   * Bumped when everything cached may be stale (a clear, a generation change): a load that
   * straddles one writes its value neither to Redis nor to L1, since it may come from the old
   * primary.
   */
  #clears = 0;
  #stats = { hits: 0, l1Hits: 0, misses: 0, loads: 0, errors: 0 };
  readonly #metrics: MetricsOptions | undefined;
  /** Set while this cache's metrics are exported. */
  #unexport: (() => void) | undefined;
  constructor(options: CacheOptions) {
    this.prefix = options.prefix ?? 'app:cache:';
    if (this.prefix.length === 0) {
      throw new DataLayerError('WARDEN_E_CONFIG_INVALID', 'cache.prefix: must not be empty');
    }
    this.#redis = options.redis;
    this.#ttlMs = options.ttlMs ?? 3_600_000;
    this.#serializer = options.serializer ?? jsonSerializer;
    this.#timeoutMs = options.timeoutMs ?? (options.redis.commandTimeoutMs ? 0 : 250);
    this.#deadlines = new Deadlines(this.#timeoutMs);
    this.#l1 = options.l1
      ? new LocalTier(options.l1.maxEntries ?? 10_000, options.l1.ttlMs ?? 60_000)
      : undefined;
    this.#lock = options.lock
      ? new StampedeLock(
          this.#redis,
          this.prefix,
          {
            ttlMs: options.lock.ttlMs ?? 5000,
            waitMs: options.lock.waitMs ?? options.lock.ttlMs ?? 5000,
            pollMs: options.lock.pollMs ?? 25,
          },
          (call) => this.#guard(call),
        )
      : undefined;
    this.#breaker = new CircuitBreaker(options.breaker);
    this.#log = childLogger(options.logger ?? silentLogger, { component: 'cache' });
    this.#bus = new InvalidationBus({
      redis: this.#redis,
      channel: options.coherence?.channel ?? `${this.prefix}__invalidate`,
      race: (promise) => this.#deadlines.race(promise),
      onError: () => {
        this.#stats.errors++;
      },
      log: this.#log,
    });
    this.#tags = new CacheTags(this.#redis, this.prefix);
    this.#generationKey = options.coherence?.generationKey ?? `${this.prefix}__generation`;
    this.#generation = this.#l1 ? this.#watchGeneration(options) : undefined;
    this.#metrics = options.metrics && checkMetricsOptions(options.metrics, 'cache.metrics');
    this.#exportMetrics();
  }

  #exportMetrics(): void {
    if (!this.#metrics || this.#unexport) return;
    this.#unexport = exportCacheMetrics(this.#metrics, this.#metrics.name ?? this.prefix, () => this.stats());
  }

  #watchGeneration(options: CacheOptions): GenerationWatch {
    const l1TtlMs = this.#l1!.ttlMs;
    const everyMs = options.coherence?.checkEveryMs ?? Math.min(1000, l1TtlMs);
    if (!(everyMs > 0) || everyMs > l1TtlMs) {
      throw new DataLayerError(
        'WARDEN_E_CONFIG_INVALID',
        `cache.coherence.checkEveryMs: must be > 0 and at most l1.ttlMs (${l1TtlMs})`,
      );
    }
    return new GenerationWatch({
      redis: this.#redis,
      key: this.#generationKey,
      everyMs,
      race: (promise) => this.#deadlines.race(promise),
      onChange: () => {
        this.#log.info({ key: this.#generationKey }, 'cache generation changed; L1 dropped');
        this.#dropAll();
      },
      onError: () => {
        this.#stats.errors++;
      },
    });
  }

  /**
   * How long, at most, a stale L1 entry can be served after the generation key changed without
   * this instance receiving the message (undefined without L1).
   */
  get staleBoundMs(): number | undefined {
    return this.#generation?.staleBoundMs;
  }

  #dropAll(): void {
    this.#l1?.clear();
    this.#epoch++;
    this.#clears++;
  }

  /** An L1 hit, served only while the generation was confirmed recently (see GenerationWatch). */
  #localHit(key: string): { value: unknown } | undefined {
    const l1 = this.#l1;
    if (l1 === undefined || l1.size === 0) return undefined;
    if (!this.#generation!.fresh(Date.now())) return undefined;
    return l1.get(key);
  }

  /**
   * Subscribes to invalidations from other instances and the daemon, and starts watching the
   * generation key (only needed with `l1`; until then the L1 is not served); exports metrics
   * again after `stop()`. Idempotent.
   */
  async start(): Promise<void> {
    this.#exportMetrics();
    if (!this.#l1 || this.#unsubscribe) return;
    this.#unsubscribe = await this.#bus.subscribe((message) => this.#onInvalidation(message));
    await this.#generation!.start();
  }

  /** Stops exporting metrics and unsubscribes. Idempotent. Does not close the Redis client, which the caller owns. */
  async stop(): Promise<void> {
    this.#unexport?.();
    this.#unexport = undefined;
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    this.#generation?.stop();
    this.#l1?.clear();
    if (unsubscribe) await unsubscribe().catch(() => undefined);
  }

  stats(): CacheStats {
    return { ...this.#stats, breaker: this.#breaker.state, breakerOpens: this.#breaker.opens };
  }

  /**
   * Returns the cached value of `key`, or runs `loader`, caches and returns its result.
   * Concurrent misses of one key in this process share one loader call. A loader result of
   * `undefined` is returned but not cached. Loader errors reach the caller and are not cached.
   *
   * @example
   * const rates = await cache.getOrSet('fx:rates', fetchRates, { ttlMs: 60_000 });
   */
  getOrSet<T>(key: string, loader: () => Promise<T> | T, options: GetOrSetOptions = NO_OPTIONS): Promise<T> {
    const local = this.#localHit(key);
    if (local) {
      this.#stats.hits++;
      this.#stats.l1Hits++;
      return Promise.resolve(local.value as T);
    }
    const epoch = this.#epoch;
    if (!this.#breaker.allow()) return this.#load(key, loader, options, epoch);
    // The caller's promise is the GET's own, chained once: a hit costs no promise of the cache's.
    // A GET that does not answer in time is cancelled by the shared deadline timer; its
    // rejection then runs the loader like any failed GET.
    let get: Promise<string | null>;
    let pending: PendingGet | undefined;
    try {
      if (this.#timeoutMs > 0) {
        const call = this.#cancellableGet(this.#entryKey(key));
        pending = new PendingGet(call.cancel);
        this.#deadlines.track(pending);
        get = call.promise;
      } else {
        get = this.#redis.get(this.#entryKey(key));
      }
    } catch (error) {
      get = Promise.reject(error); // a client that throws instead of rejecting
    }
    return get.then(
      (text) => this.#answered(text, key, loader, options, epoch, pending),
      (error: unknown) => this.#failed(error, key, loader, options, epoch, pending),
    );
  }

  /** The cached value, or `undefined` on a miss or when Redis is unavailable. */
  async get<T>(key: string): Promise<T | undefined> {
    const local = this.#localHit(key);
    if (local) {
      this.#stats.hits++;
      this.#stats.l1Hits++;
      return local.value as T;
    }
    const epoch = this.#epoch;
    const value = await this.#readRedis(key);
    if (value === MISS) {
      this.#stats.misses++;
      return undefined;
    }
    this.#stats.hits++;
    if (epoch === this.#epoch) this.#l1?.set(key, value, this.#ttlMs, []);
    return value as T;
  }

  /** Writes an entry; raises `WARDEN_E_CACHE_UNAVAILABLE` when Redis does not take it. */
  async set(key: string, value: unknown, options: GetOrSetOptions = {}): Promise<void> {
    await this.#explicit('set', () => this.#write(key, value, options));
    await this.#announce({ k: [key] });
    this.#l1?.set(key, value, options.ttlMs ?? this.#ttlMs, options.tags ?? []);
  }

  /** Deletes entries by key, here and in every instance's L1. */
  async delete(keys: string | readonly string[]): Promise<void> {
    const list = typeof keys === 'string' ? [keys] : [...keys];
    this.#l1?.delete(list);
    this.#epoch++;
    await this.#explicit('delete', () => this.#redis.unlink(list.map((k) => this.#entryKey(k))));
    await this.#announce({ k: list });
  }

  /** Deletes every entry written with any of `tags` (entity or query invalidation). */
  async invalidateTags(tags: readonly string[]): Promise<void> {
    this.#l1?.deleteTagged(tags);
    this.#epoch++;
    const keys = await this.#explicit('invalidateTags', async () => {
      const entryKeys = await this.#tags.pop(tags);
      await this.#redis.unlink(entryKeys);
      return entryKeys.map((k) => k.slice(this.prefix.length + 2));
    });
    this.#l1?.delete(keys);
    await this.#announce({ k: keys, t: [...tags] });
  }

  /**
   * Deletes every key under this cache's prefix with SCAN + UNLINK on every master (never KEYS,
   * never outside the prefix, so sessions and rate limits survive). Returns the number deleted.
   */
  async clear(): Promise<number> {
    this.#dropAll();
    let deleted = 0;
    await this.#explicit(
      'clear',
      () =>
        this.#redis.scan(`${escapeGlob(this.prefix)}*`, async (keys) => {
          // The generation key stays: deleting it could let an instance miss a later bump (ABA).
          // So do the keys under it (Warden's daemon keeps `<key>:timeline` there).
          const entries = keys.filter((k) => !k.startsWith(this.#generationKey));
          if (entries.length > 0) deleted += await this.#redis.unlink(entries);
        }),
      0,
    );
    await this.#announce({ c: 1 });
    return deleted;
  }

  #cancellableGet(key: string): CancellableGet {
    return this.#redis.getCancellable
      ? this.#redis.getCancellable(key)
      : cancellable(() => this.#redis.get(key));
  }

  /** The hit path: the GET answered in time; a miss (or an unreadable entry) loads. */
  #answered<T>(
    text: string | null,
    key: string,
    loader: () => Promise<T> | T,
    options: GetOrSetOptions,
    epoch: number,
    pending: PendingGet | undefined,
  ): T | Promise<T> {
    if (pending) this.#deadlines.answered(pending);
    this.#breaker.success();
    if (typeof text === 'string') {
      const value = this.#decode(text, key);
      if (value !== MISS) {
        this.#stats.hits++;
        if (this.#l1 !== undefined && epoch === this.#epoch) {
          this.#l1.set(key, value, options.ttlMs ?? this.#ttlMs, options.tags ?? []);
        }
        return value as T;
      }
    }
    return this.#load(key, loader, options, epoch);
  }

  /** A failed, cancelled (timed out) or refused GET: counted, and the loader answers. */
  #failed<T>(
    error: unknown,
    key: string,
    loader: () => Promise<T> | T,
    options: GetOrSetOptions,
    epoch: number,
    pending: PendingGet | undefined,
  ): Promise<T> {
    if (pending) this.#deadlines.answered(pending);
    this.#recordFailure(error);
    return this.#load(key, loader, options, epoch);
  }

  /**
   * A miss: joins the load of `key` already in progress in this process, or starts one. A load
   * stays registered until its value is written to Redis, and Redis answers one connection's
   * commands in order, so a GET that missed because it was sent before that write always finds
   * the load still registered: concurrent misses share one loader call.
   */
  #load<T>(key: string, loader: () => Promise<T> | T, options: GetOrSetOptions, epoch: number): Promise<T> {
    this.#stats.misses++;
    return this.#loading.run(key, () => this.#loadThrough(key, loader, options, epoch));
  }

  async #loadThrough<T>(
    key: string,
    loader: () => Promise<T> | T,
    options: GetOrSetOptions,
    epoch: number,
  ): Promise<T> {
    const lock = this.#lock;
    let lockToken: string | undefined;
    if (lock && this.#breaker.allow()) {
      const token = lock.newToken();
      const acquired = await lock.take(key, token);
      if (acquired === true) {
        lockToken = token;
      } else if (acquired === false) {
        const value = await lock.awaitOther(
          () => this.#readRedis(key),
          () => this.#breaker.allow(),
        );
        if (value !== MISS) {
          this.#stats.hits++;
          return value as T;
        }
      }
    }
    const clears = this.#clears;
    try {
      this.#stats.loads++;
      const value = await loader();
      // A clear or a generation change during the load: the value may come from the old
      // primary, so it is returned but cached nowhere.
      if (value !== undefined && clears === this.#clears) {
        if (this.#breaker.allow()) await this.#guard(() => this.#write(key, value, options));
        if (epoch === this.#epoch)
          this.#l1?.set(key, value, options.ttlMs ?? this.#ttlMs, options.tags ?? []);
      }
      return value;
    } finally {
      if (lockToken !== undefined) lock!.release(key, lockToken);
    }
  }

  async #readRedis(key: string): Promise<unknown> {
    if (!this.#breaker.allow()) return MISS;
    let text: string | null;
    try {
      text = await this.#deadlines.race(this.#redis.get(this.#entryKey(key)));
      this.#breaker.success();
    } catch (error) {
      this.#recordFailure(error);
      return MISS;
    }
    return text === null ? MISS : this.#decode(text, key);
  }

  /** The stored text's value, or MISS (counted and logged) when it cannot be deserialized. */
  #decode(text: string, key: string): unknown {
    try {
      return this.#serializer.deserialize(text);
    } catch (error) {
      this.#stats.errors++;
      this.#log.warn({ err: error, key }, 'cache entry could not be deserialized; treating as a miss');
      return MISS;
    }
  }

  async #write(key: string, value: unknown, options: GetOrSetOptions): Promise<void> {
    const ttlMs = options.ttlMs ?? this.#ttlMs;
    const entryKey = this.#entryKey(key);
    await this.#redis.set(entryKey, this.#serializer.serialize(value), { px: ttlMs });
    if (options.tags && options.tags.length > 0) await this.#tags.add(options.tags, entryKey, ttlMs);
  }

  /** Runs a Redis call for a read-through path: errors and timeouts become `undefined`. */
  async #guard<T>(call: () => Promise<T>): Promise<T | undefined> {
    try {
      const value = await this.#deadlines.race(call());
      this.#breaker.success();
      return value;
    } catch (error) {
      this.#recordFailure(error);
      return undefined;
    }
  }

  async #explicit<T>(operation: string, call: () => Promise<T>, timeoutMs = this.#timeoutMs * 4): Promise<T> {
    try {
      const value = await this.#withTimeout(call(), timeoutMs);
      this.#breaker.success();
      return value;
    } catch (error) {
      this.#recordFailure(error);
      throw new DataLayerError('WARDEN_E_CACHE_UNAVAILABLE', `cache ${operation} failed: Redis unavailable`, {
        cause: error,
        details: { operation },
        hint: 'Entries may stay stale until their TTL; retry once Redis is back.',
      });
    }
  }

  #recordFailure(error: unknown): void {
    this.#stats.errors++;
    const before = this.#breaker.state;
    this.#breaker.failure();
    if (before !== 'open' && this.#breaker.state === 'open') {
      this.#log.warn({ err: error }, 'cache circuit breaker opened; serving from loaders');
    }
  }

  #withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
    if (timeoutMs <= 0) return promise;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  /** Tells the other instances' L1 tiers (only with `l1`: without it nobody listens). */
  async #announce(message: Omit<InvalidationMessage, 'o'>): Promise<void> {
    if (this.#l1) await this.#bus.publish(message);
  }

  /** Another instance (or the daemon) invalidated entries. */
  #onInvalidation(message: InvalidationMessage): void {
    this.#epoch++;
    if (typeof message.g === 'string') this.#generation?.announced(message.g);
    if (message.c) this.#dropAll();
    if (message.k) this.#l1?.delete(message.k);
    if (message.t) this.#l1?.deleteTagged(message.t);
  }

  #entryKey(key: string): string {
    return `${this.prefix}k:${key}`;
  }
}

/** A `getOrSet` GET in the shared deadline queue: expiring cancels it. */
class PendingGet implements DeadlineCall {
  deadline = 0;
  settled = false;

  constructor(readonly expire: (error: Error) => void) {}
}
