/**
 * Per-call timeouts of one fixed duration with a single timer for all calls, instead of a
 * `setTimeout` + `Promise.race` + `clearTimeout` per call on the hot path. Calls are tracked in
 * start order, which with one duration is also deadline order, so the timer only ever waits for
 * the oldest unsettled call; calls that settle are dropped from the front as they go.
 *
 * @example
 * const deadlines = new Deadlines(250);
 * const value = await deadlines.race(redis.get(key)); // rejects after 250 ms without a reply
 */
export class Deadlines {
  readonly #timeoutMs: number;
  /** Tracked calls in start order; `#head` is the first one still in the list. */
  #queue: Tracked[] = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #expire = () => this.#onTimer();

  constructor(timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
  }

  get timeoutMs(): number {
    return this.#timeoutMs;
  }

  /**
   * Settles like `promise`, or rejects with `Redis did not answer within <timeoutMs> ms` once the
   * duration has passed. A duration of 0 or less returns `promise` itself.
   */
  race<T>(promise: Promise<T>): Promise<T> {
    if (this.#timeoutMs <= 0) return promise;
    return new Promise<T>((resolve, reject) => {
      const tracked = new Tracked(Date.now() + this.#timeoutMs, reject as (error: unknown) => void, this);
      this.#queue.push(tracked);
      if (this.#timer === undefined) this.#arm(this.#timeoutMs);
      promise.then(
        (value) => {
          if (tracked.settle()) resolve(value);
        },
        (error: unknown) => {
          if (tracked.settle()) reject(error);
        },
      );
    });
  }

  /** Called by a tracked call that settled: drops settled calls from the front. */
  compact(): void {
    const queue = this.#queue;
    let head = this.#head;
    while (head < queue.length && queue[head]!.settled) head++;
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
      // nothing pending: the timer must not keep the process alive (as a cleared per-call timer would not)
      if (this.#timer !== undefined) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
      }
    } else if (head >= 1024 && head * 2 >= queue.length) {
      queue.splice(0, head);
      head = 0;
    }
    this.#head = head;
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(this.#expire, Math.max(0, delayMs));
  }

  #onTimer(): void {
    this.#timer = undefined;
    const now = Date.now();
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const tracked = queue[this.#head]!;
      if (!tracked.settled) {
        if (tracked.deadline > now) break;
        tracked.settled = true;
        tracked.reject(new Error(`Redis did not answer within ${this.#timeoutMs} ms`));
      }
      this.#head++;
    }
    this.compact();
    const next = queue[this.#head];
    if (next) this.#arm(next.deadline - now);
  }
}

class Tracked {
  settled = false;

  constructor(
    readonly deadline: number,
    readonly reject: (error: unknown) => void,
    readonly owner: Deadlines,
  ) {}

  /** True when this call settles now (it had not timed out). */
  settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.owner.compact();
    return true;
  }
}
