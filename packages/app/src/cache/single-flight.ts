/**
 * In-process stampede protection: concurrent misses of one key share one load. A load stays
 * registered until it settles (for the cache: until its value is written to Redis).
 */
export class SingleFlight {
  /** Loads in progress per key. */
  readonly #inFlight = new Map<string, Promise<unknown>>();

  /** Joins the load of `key` already in progress, or starts one with `load`. */
  run<T>(key: string, load: () => Promise<T>): Promise<T> {
    const pending = this.#inFlight.get(key);
    if (pending) return pending as Promise<T>;
    // #runAndRelease removes the entry when it settles, always after this registration (it awaits first).
    const promise = this.#runAndRelease(key, load);
    this.#inFlight.set(key, promise);
    return promise;
  }

  async #runAndRelease<T>(key: string, load: () => Promise<T>): Promise<T> {
    try {
      return await load();
    } finally {
      this.#inFlight.delete(key);
    }
  }
}
