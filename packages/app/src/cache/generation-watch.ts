import type { RedisLike } from '../redis/redis-like.ts';

export interface GenerationWatchOptions {
  redis: RedisLike;
  /** The key whose value changes when everything cached may be stale (a failover, a cut-over). */
  key: string;
  /** How often the key is read. */
  everyMs: number;
  /** Bounds one read; a read that does not answer in time counts as not confirmed. */
  race: <T>(promise: Promise<T>) => Promise<T>;
  /** Called when the value read differs from the one seen before (the L1 must go). */
  onChange: () => void;
  /** Called when a read fails (counted as a cache error). */
  onError: (error: unknown) => void;
}

/**
 * Watches the generation key so that an instance which missed an invalidation message (its
 * subscriber was reconnecting, the message was published while it was partitioned) still notices.
 *
 * The guarantee: a read confirms the generation as of the moment it was *sent*. The L1 may serve
 * only while the last confirmation is younger than `2 × everyMs` ({@link fresh}); a read starts
 * every `everyMs`, so after a bump the L1 stops serving stale entries within `2 × everyMs` whether
 * the reads succeed (the change is seen) or not (the confirmation ages out). Without a change and
 * with Redis answering, the L1 serves as usual.
 *
 * The value is compared for inequality, never for order: a key that disappeared (evicted,
 * deleted by hand) also counts as a change.
 */
export class GenerationWatch {
  readonly #options: GenerationWatchOptions;
  /** The value last read (`undefined`: never read yet). */
  #value: string | null | undefined;
  /** When the read that confirmed `#value` was sent (0: never). */
  #confirmedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #reading = false;

  constructor(options: GenerationWatchOptions) {
    this.#options = options;
  }

  /** The bound, in milliseconds, on how long a stale L1 can serve after the key changed. */
  get staleBoundMs(): number {
    return 2 * this.#options.everyMs;
  }

  /** Reads the key once (the starting value), then every `everyMs`. Idempotent. */
  async start(): Promise<void> {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.check(), this.#options.everyMs);
    this.#timer.unref();
    await this.check();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#confirmedAt = 0;
  }

  /** True while the L1 may serve: the generation was confirmed recently enough. */
  fresh(now: number): boolean {
    return now - this.#confirmedAt < this.staleBoundMs;
  }

  /** A message carried the new value: take it as read now (the L1 was dropped by the message). */
  announced(value: string): void {
    this.#value = value;
  }

  /** Reads the key; a change calls `onChange`. Never throws. */
  async check(): Promise<void> {
    if (this.#reading) return;
    this.#reading = true;
    const sentAt = Date.now();
    try {
      const value = await this.#options.race(this.#options.redis.get(this.#options.key));
      if (this.#value !== undefined && value !== this.#value) this.#options.onChange();
      this.#value = value;
      this.#confirmedAt = sentAt;
    } catch (error) {
      this.#options.onError(error);
    } finally {
      this.#reading = false;
    }
  }
}
