import type { RedisLike } from '../redis/redis-like.ts';
import { ADD_TO_TAG, POP_TAG } from './cache-scripts.ts';

/**
 * Tag sets in Redis (`<prefix>t:<tag>`): each lists the entry keys written with that tag, so
 * invalidating a tag (an entity, a query) finds the entries to delete.
 */
export class CacheTags {
  readonly #redis: RedisLike;
  readonly #prefix: string;

  constructor(redis: RedisLike, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  /** Records `entryKey` under each tag; a tag set lives as long as its longest-lived entry. */
  add(tags: readonly string[], entryKey: string, ttlMs: number): Promise<unknown[]> {
    return Promise.all(tags.map((tag) => this.#redis.eval(ADD_TO_TAG, [this.#key(tag)], [entryKey, ttlMs])));
  }

  /** The entry keys recorded under any of `tags` (each tag set deleted in the same step), once each. */
  async pop(tags: readonly string[]): Promise<string[]> {
    const popped = await Promise.all(tags.map((tag) => this.#redis.eval(POP_TAG, [this.#key(tag)], [])));
    return [...new Set((popped as string[][]).flat())];
  }

  #key(tag: string): string {
    return `${this.#prefix}t:${tag}`;
  }
}
