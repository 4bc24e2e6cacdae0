/**
 * A call watched by {@link Deadlines}: it reports its answer with {@link Deadlines.answered};
 * `expire` runs instead when it did not answer in time.
 */
export interface DeadlineCall {
  /** Set by `track()`. */
  deadline: number;
  /** True once answered or expired; exactly one of the two happens. */
  settled: boolean;
  expire(error: Error): void;
}

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
  /**
   * Tracked calls in start order; `#head` is the first one still in the list. Slots before it are
   * cleared, so a settled call (and the value it resolved with) is not kept alive until the next
   * splice: it would survive young-generation GCs and be promoted for nothing.
   */
  #queue: Array<DeadlineCall | undefined> = [];
  #head = 0;
  #timer: NodeJS.Timeout | undefined;
  /** The timer is unref'd while nothing is pending (cheaper than clearing and re-arming it each time). */
  #timerRefed = false;
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
      const tracked = new Tracked(reject as (error: unknown) => void);
      this.track(tracked);
      promise.then(
        (value) => {
          if (this.answered(tracked)) resolve(value);
        },
        (error: unknown) => {
          if (this.answered(tracked)) reject(error);
        },
      );
    });
  }

  /**
   * Watches `call` from now on: unless {@link answered} is called for it within the duration,
   * its `expire` runs with `Redis did not answer within <timeoutMs> ms`. For hot paths that
   * settle their own promise, so no promise is wrapped around the call. Needs a duration > 0.
   */
  track(call: DeadlineCall): void {
    call.deadline = Date.now() + this.#timeoutMs;
    this.#queue.push(call);
    if (this.#timer === undefined) this.#arm(this.#timeoutMs);
    else if (!this.#timerRefed) {
      // Armed for an earlier call that has settled: it fires no later than this call's deadline.
      this.#timer.ref();
      this.#timerRefed = true;
    }
  }

  /** Records `call`'s answer; false when it had already expired (the answer must be ignored). */
  answered(call: DeadlineCall): boolean {
    if (call.settled) return false;
    call.settled = true;
    if (this.#queue[this.#head] === call) this.#compact();
    return true;
  }

  /** Drops settled calls from the front. */
  #compact(): void {
    const queue = this.#queue;
    let head = this.#head;
    while (head < queue.length && queue[head]!.settled) queue[head++] = undefined;
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
      // Nothing pending: the timer must not keep the process alive (as a cleared per-call timer
      // would not), but stays armed for the next calls; when it fires idle it just stops.
      if (this.#timerRefed) {
        this.#timer!.unref();
        this.#timerRefed = false;
      }
    } else if (head >= 1024 && head * 2 >= queue.length) {
      queue.splice(0, head);
      head = 0;
    }
    this.#head = head;
  }

  #arm(delayMs: number): void {
    this.#timer = setTimeout(this.#expire, Math.max(0, delayMs));
    this.#timerRefed = true;
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.#timerRefed = false;
    const now = Date.now();
    const queue = this.#queue;
    const expired: DeadlineCall[] = [];
    while (this.#head < queue.length) {
      const call = queue[this.#head]!;
      if (!call.settled) {
        if (call.deadline > now) break;
        call.settled = true;
        expired.push(call);
      }
      queue[this.#head++] = undefined;
    }
    this.#compact();
    const next = queue[this.#head];
    if (next) this.#arm(next.deadline - now);
    // after the queue is consistent again: an expire may start new calls
    for (const call of expired) call.expire(new Error(`Redis did not answer within ${this.#timeoutMs} ms`));
  }
}

class Tracked implements DeadlineCall {
  deadline = 0;
  settled = false;

  constructor(readonly reject: (error: unknown) => void) {}

  expire(error: Error): void {
    this.reject(error);
  }
}
