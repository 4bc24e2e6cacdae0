import type { DeadlineCall } from '../redis/deadlines.ts';
import type { GetOrSetOptions } from './cache.ts';

/** What a {@link Lookup} reports to its cache: one object per cache, so a lookup needs no closures of its own. */
export interface LookupOwner {
  /** The GET answered (`null`: no entry), in time. */
  answered(lookup: Lookup, text: string | null): void;
  /** The GET failed or did not answer in time. */
  failed(lookup: Lookup, error: unknown): void;
  /** Returns true unless the lookup already expired. */
  settle(lookup: Lookup): boolean;
}

/**
 * One `getOrSet` call on its way through Redis: it settles the caller's promise itself from the
 * GET's answer (or hands over to the loader), and is its own entry in the shared deadline queue,
 * so a hit costs one promise and no wrapper around the GET.
 */
export class Lookup implements DeadlineCall {
  deadline = 0;
  settled = false;
  resolve!: (value: unknown) => void;
  reject!: (error: unknown) => void;

  constructor(
    readonly owner: LookupOwner,
    readonly key: string,
    readonly loader: () => unknown,
    readonly options: GetOrSetOptions,
    /** The cache's invalidation epoch when the lookup started. */
    readonly epoch: number,
  ) {}

  /** Waits for `get` and returns the caller's promise, which settles with the loader's type. */
  start<T>(get: Promise<string | null>): Promise<T> {
    const promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve as (value: unknown) => void;
      this.reject = reject;
    });
    get.then(
      (text) => {
        if (this.owner.settle(this)) this.owner.answered(this, text);
      },
      (error: unknown) => {
        if (this.owner.settle(this)) this.owner.failed(this, error);
      },
    );
    return promise;
  }

  expire(error: Error): void {
    this.owner.failed(this, error);
  }
}
