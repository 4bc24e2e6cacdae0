import { randomBytes } from 'node:crypto';
import type { Logger } from '../logger.ts';
import type { RedisLike } from '../redis/redis-like.ts';

/** What instances (and Warden's daemon) publish on the invalidation channel. */
export interface InvalidationMessage {
  /** origin instance (`warden` for the daemon) */
  o: string;
  k?: string[];
  t?: string[];
  c?: 1;
  /** the new generation, with `c` (from the daemon) */
  g?: string;
}

export interface InvalidationBusOptions {
  readonly redis: RedisLike;
  readonly channel: string;
  /** Bounds the publish (the cache's `timeoutMs` guard). */
  readonly race: <T>(promise: Promise<T>) => Promise<T>;
  /** A publish failed (the cache counts it as an error). */
  readonly onError: () => void;
  readonly log: Logger;
}

/**
 * Keeps the L1 tiers of a cache's instances coherent over Redis pub/sub: each instance announces
 * its invalidations and hears the others' (its own are skipped by origin id).
 */
export class InvalidationBus {
  readonly #options: InvalidationBusOptions;
  readonly #instanceId = randomBytes(8).toString('hex');

  constructor(options: InvalidationBusOptions) {
    this.#options = options;
  }

  /** Subscribes `onMessage` to the other instances' messages; resolves to the unsubscribe call. */
  subscribe(onMessage: (message: InvalidationMessage) => void): Promise<() => Promise<void>> {
    return this.#options.redis.subscribe(this.#options.channel, (text) => {
      let message: InvalidationMessage;
      try {
        message = JSON.parse(text) as InvalidationMessage;
      } catch {
        return;
      }
      if (message.o === this.#instanceId) return;
      onMessage(message);
    });
  }

  /** Announces an invalidation; a failure is logged and counted, never raised. */
  async publish(message: Omit<InvalidationMessage, 'o'>): Promise<void> {
    const { redis, channel, race } = this.#options;
    try {
      await race(redis.publish(channel, JSON.stringify({ o: this.#instanceId, ...message })));
    } catch (error) {
      this.#options.onError();
      this.#options.log.warn(
        { err: error },
        'L1 invalidation could not be published; other instances expire by L1 TTL',
      );
    }
  }
}
