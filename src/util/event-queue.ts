/**
 * A single-consumer async queue with byte-based backpressure: the producer pushes (from socket
 * callbacks), `pause()` is called once the queued bytes pass the high-water mark and `resume()`
 * once the consumer has drained below half of it. Keeps memory bounded whatever the data size.
 */
export class EventQueue<T> implements AsyncIterable<T> {
  private items: Array<{ item: T; size: number }> = [];
  private head = 0;
  private queuedBytes = 0;
  private paused = false;
  private finished = false;
  private failure: unknown;
  private wake: (() => void) | undefined;

  constructor(
    private readonly highWaterBytes: number,
    private readonly flow: { pause(): void; resume(): void },
  ) {}

  push(item: T, size = 0): void {
    this.items.push({ item, size });
    this.queuedBytes += size;
    if (!this.paused && this.queuedBytes >= this.highWaterBytes) {
      this.paused = true;
      this.flow.pause();
    }
    this.notify();
  }

  end(): void {
    this.finished = true;
    this.notify();
  }

  fail(error: unknown): void {
    if (this.failure === undefined) this.failure = error ?? new Error('stream failed');
    this.notify();
  }

  /** Events pushed but not yet taken by the consumer. */
  get pending(): number {
    return this.items.length - this.head;
  }

  get ended(): boolean {
    return this.finished || this.failure !== undefined;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.head < this.items.length) {
        const entry = this.items[this.head]!;
        this.items[this.head] = undefined as never;
        this.head += 1;
        if (this.head > 1024 && this.head * 2 > this.items.length) {
          this.items = this.items.slice(this.head);
          this.head = 0;
        }
        this.queuedBytes -= entry.size;
        if (this.paused && this.queuedBytes <= this.highWaterBytes / 2) {
          this.paused = false;
          this.flow.resume();
        }
        yield entry.item;
        continue;
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.finished) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
