interface Entry {
  value: unknown;
  expiresAt: number;
  tags: readonly string[];
}

/**
 * The optional in-process (L1) tier: a size-bounded LRU of deserialized values with per-entry
 * expiry. Values are shared between callers, so treat cached objects as read-only.
 */
export class LocalTier {
  readonly #entries = new Map<string, Entry>();

  constructor(
    readonly maxEntries: number,
    readonly ttlMs: number,
  ) {}

  get(key: string): { value: unknown } | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    // re-insert to mark as most recently used
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry;
  }

  set(key: string, value: unknown, ttlMs: number, tags: readonly string[]): void {
    this.#entries.delete(key);
    this.#entries.set(key, { value, expiresAt: Date.now() + Math.min(ttlMs, this.ttlMs), tags });
    if (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
  }

  delete(keys: readonly string[]): void {
    for (const key of keys) this.#entries.delete(key);
  }

  deleteTagged(tags: readonly string[]): void {
    if (tags.length === 0) return;
    const wanted = new Set(tags);
    for (const [key, entry] of this.#entries) {
      if (entry.tags.some((t) => wanted.has(t))) this.#entries.delete(key);
    }
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}
