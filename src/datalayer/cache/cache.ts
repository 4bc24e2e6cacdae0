import { randomBytes } from 'node:crypto';
import { WardenError } from '../../errors.ts';
import { silentLogger, type Logger } from '../../logger.ts';
import { CircuitBreaker, type BreakerState, type CircuitBreakerOptions } from '../redis/circuit-breaker.ts';
import { Deadlines, type DeadlineCall } from '../redis/deadlines.ts';
import { escapeGlob } from '../redis/glob.ts';
import { cancellable, type CancellableGet, type RedisLike } from '../redis/redis-like.ts';
import { ADD_TO_TAG, POP_TAG, RELEASE_LOCK } from './cache-scripts.ts';
import { LocalTier } from './local-tier.ts';
import { jsonSerializer, type Serializer } from './serializer.ts';

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
   * Cross-instance stampede protection: the first instance to miss takes a short Redis lock and
   * loads; the others poll for its result up to `waitMs`, then load themselves. Off by default.
   */
  lock?: { ttlMs?: number; waitMs?: number; pollMs?: number };
  breaker?: CircuitBreakerOptions;
  logger?: Logger;
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

interface InvalidationMessage {
  /** origin instance */
  o: string;
  k?: string[];
  t?: string[];
  c?: 1;
}

const MISS = Symbol('miss');
/** The default of `getOrSet`'s options: shared, so a call without options allocates none. */
const NO_OPTIONS: GetOrSetOptions = Object.freeze({});
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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
  readonly #lock: { ttlMs: number; waitMs: number; pollMs: number } | undefined;
  readonly #breaker: CircuitBreaker;
  readonly #log: Logger;
  /** Loader calls in progress per key: concurrent misses of a key share one (stampede protection). */
  readonly #loading = new Map<string, Promise<unknown>>();
  readonly #instanceId = randomBytes(8).toString('hex');
  readonly #channel: string;
  #unsubscribe: (() => Promise<void>) | undefined;
  /** Bumped on every invalidation received, so a read racing an invalidation skips L1. */
  #epoch = 0;
  #stats = { hits: 0, l1Hits: 0, misses: 0, loads: 0, errors: 0 };
  constructor(options: CacheOptions) {
    this.prefix = options.prefix ?? 'app:cache:';
    if (this.prefix.length === 0) {
      throw new WardenError('WARDEN_E_CONFIG_INVALID', 'cache.prefix: must not be empty');
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
      ? {
          ttlMs: options.lock.ttlMs ?? 5000,
          waitMs: options.lock.waitMs ?? options.lock.ttlMs ?? 5000,
          pollMs: options.lock.pollMs ?? 25,
        }
      : undefined;
    this.#breaker = new CircuitBreaker(options.breaker);
    this.#log = (options.logger ?? silentLogger).child({ component: 'cache' });
    this.#channel = `${this.prefix}__invalidate`;
  }

  /** Subscribes to invalidations from other instances (only needed with `l1`). Idempotent. */
  async start(): Promise<void> {
    if (!this.#l1 || this.#unsubscribe) return;
    this.#unsubscribe = await this.#redis.subscribe(this.#channel, (message) =>
      this.#onInvalidation(message),
    );
  }

  /** Idempotent. Does not close the Redis client, which the caller owns. */
  async stop(): Promise<void> {
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
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
    const local = this.#l1?.get(key);
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
    const local = this.#l1?.get(key);
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
      const popped = await Promise.all(tags.map((tag) => this.#redis.eval(POP_TAG, [this.#tagKey(tag)], [])));
      const entryKeys = [...new Set((popped as string[][]).flat())];
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
    this.#l1?.clear();
    this.#epoch++;
    let deleted = 0;
    await this.#explicit(
      'clear',
      () =>
        this.#redis.scan(`${escapeGlob(this.prefix)}*`, async (keys) => {
          deleted += await this.#redis.unlink(keys);
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
    const pending = this.#loading.get(key);
    if (pending) return pending as Promise<T>;
    // #loadAndRelease removes the entry when it settles, always after this registration (it awaits first).
    const promise = this.#loadAndRelease(key, loader, options, epoch);
    this.#loading.set(key, promise);
    return promise;
  }

  async #loadAndRelease<T>(
    key: string,
    loader: () => Promise<T> | T,
    options: GetOrSetOptions,
    epoch: number,
  ): Promise<T> {
    try {
      return await this.#loadThrough(key, loader, options, epoch);
    } finally {
      this.#loading.delete(key);
    }
  }

  async #loadThrough<T>(
    key: string,
    loader: () => Promise<T> | T,
    options: GetOrSetOptions,
    epoch: number,
  ): Promise<T> {
    let lockToken: string | undefined;
    if (this.#lock && this.#breaker.allow()) {
      lockToken = randomBytes(12).toString('hex');
      const acquired = await this.#guard(() =>
        this.#redis.set(this.#lockKey(key), lockToken!, { px: this.#lock!.ttlMs, nx: true }),
      );
      if (acquired !== true) {
        lockToken = undefined;
        if (acquired === false) {
          const value = await this.#awaitOtherLoader(key);
          if (value !== MISS) {
            this.#stats.hits++;
            return value as T;
          }
        }
      }
    }
    try {
      this.#stats.loads++;
      const value = await loader();
      if (value !== undefined) {
        if (this.#breaker.allow()) await this.#guard(() => this.#write(key, value, options));
        if (epoch === this.#epoch)
          this.#l1?.set(key, value, options.ttlMs ?? this.#ttlMs, options.tags ?? []);
      }
      return value;
    } finally {
      if (lockToken !== undefined) {
        const token = lockToken;
        void this.#guard(() => this.#redis.eval(RELEASE_LOCK, [this.#lockKey(key)], [token]));
      }
    }
  }

  async #awaitOtherLoader(key: string): Promise<unknown> {
    const deadline = Date.now() + this.#lock!.waitMs;
    while (Date.now() < deadline) {
      await sleep(this.#lock!.pollMs);
      const value = await this.#readRedis(key);
      if (value !== MISS) return value;
      if (!this.#breaker.allow()) return MISS;
    }
    return MISS;
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
    if (options.tags && options.tags.length > 0) {
      await Promise.all(
        options.tags.map((tag) => this.#redis.eval(ADD_TO_TAG, [this.#tagKey(tag)], [entryKey, ttlMs])),
      );
    }
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
      throw new WardenError('WARDEN_E_CACHE_UNAVAILABLE', `cache ${operation} failed: Redis unavailable`, {
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

  async #announce(message: Omit<InvalidationMessage, 'o'>): Promise<void> {
    if (!this.#l1) return;
    try {
      await this.#deadlines.race(
        this.#redis.publish(this.#channel, JSON.stringify({ o: this.#instanceId, ...message })),
      );
    } catch (error) {
      this.#stats.errors++;
      this.#log.warn(
        { err: error },
        'L1 invalidation could not be published; other instances expire by L1 TTL',
      );
    }
  }

  #onInvalidation(text: string): void {
    let message: InvalidationMessage;
    try {
      message = JSON.parse(text) as InvalidationMessage;
    } catch {
      return;
    }
    if (message.o === this.#instanceId) return;
    this.#epoch++;
    if (message.c) this.#l1?.clear();
    if (message.k) this.#l1?.delete(message.k);
    if (message.t) this.#l1?.deleteTagged(message.t);
  }

  #entryKey(key: string): string {
    return `${this.prefix}k:${key}`;
  }

  #tagKey(tag: string): string {
    return `${this.prefix}t:${tag}`;
  }

  #lockKey(key: string): string {
    return `${this.prefix}l:${key}`;
  }
}

/** A `getOrSet` GET in the shared deadline queue: expiring cancels it. */
class PendingGet implements DeadlineCall {
  deadline = 0;
  settled = false;

  constructor(readonly expire: (error: Error) => void) {}
}
