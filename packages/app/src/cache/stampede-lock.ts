import { randomBytes } from 'node:crypto';
import type { RedisLike } from '../redis/redis-like.ts';
import { RELEASE_LOCK } from './cache-scripts.ts';
import { MISS } from './miss.ts';

export interface StampedeLockSettings {
  readonly ttlMs: number;
  readonly waitMs: number;
  readonly pollMs: number;
}

/** Runs a Redis call on a read-through path: errors and timeouts become `undefined` (counted). */
export type Guard = <T>(call: () => Promise<T>) => Promise<T | undefined>;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Cross-instance stampede protection: the first instance to miss a key takes a short Redis lock
 * (`<prefix>l:<key>`) and loads; the others poll for its result up to `waitMs`.
 */
export class StampedeLock {
  readonly #redis: RedisLike;
  readonly #prefix: string;
  readonly #settings: StampedeLockSettings;
  readonly #guard: Guard;

  constructor(redis: RedisLike, prefix: string, settings: StampedeLockSettings, guard: Guard) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#settings = settings;
    this.#guard = guard;
  }

  /** A fresh owner token for {@link take}. */
  newToken(): string {
    return randomBytes(12).toString('hex');
  }

  /** Tries to take `key`'s lock for `token`: true taken, false held by another, undefined Redis failed. */
  take(key: string, token: string): Promise<boolean | undefined> {
    return this.#guard(() => this.#redis.set(this.#key(key), token, { px: this.#settings.ttlMs, nx: true }));
  }

  /** Gives the lock back, only while `token` still owns it (in the background). */
  release(key: string, token: string): void {
    void this.#guard(() => this.#redis.eval(RELEASE_LOCK, [this.#key(key)], [token]));
  }

  /**
   * Polls `read` for the other instance's result until `waitMs` passed; MISS when none came or
   * `available()` says Redis is to be left alone (the breaker opened).
   */
  async awaitOther(read: () => Promise<unknown>, available: () => boolean): Promise<unknown> {
    const deadline = Date.now() + this.#settings.waitMs;
    while (Date.now() < deadline) {
      await sleep(this.#settings.pollMs);
      const value = await read();
      if (value !== MISS) return value;
      if (!available()) return MISS;
    }
    return MISS;
  }

  #key(key: string): string {
    return `${this.#prefix}l:${key}`;
  }
}
