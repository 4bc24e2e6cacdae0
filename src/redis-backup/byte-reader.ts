import { WardenError } from '../errors.ts';

/**
 * Pulls bytes from a socket on demand: whole lines, exact counts, or whatever is buffered. The
 * socket is paused between reads, so a reader that stops asking stops the sender (backpressure),
 * and any chunk boundary is handled by the buffer.
 */
export class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly socket: NodeJS.ReadableStream & { pause(): unknown; resume(): unknown },
    /** Names the peer in errors. */
    private readonly peer: string,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      socket.pause();
      this.notify();
    });
    socket.on('end', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('close', () => {
      this.ended = true;
      this.notify();
    });
    socket.on('error', (error: Error) => {
      this.failure = error;
      this.notify();
    });
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Waits for more bytes; false when the stream ended (or failed: then it throws). */
  private async more(): Promise<boolean> {
    if (this.failure) throw this.connectionError(this.failure);
    if (this.ended) return false;
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      this.socket.resume();
    });
    if (this.failure) throw this.connectionError(this.failure);
    return !this.ended || this.buffered > 0;
  }

  private connectionError(cause: Error): WardenError {
    return new WardenError(
      'WARDEN_E_REDIS_UNREACHABLE',
      `connection to Redis at ${this.peer} failed: ${cause.message}`,
      {
        details: { peer: this.peer },
        cause,
      },
    );
  }

  private flat(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private take(length: number): Buffer {
    const all = this.flat();
    const head = all.subarray(0, length);
    const rest = all.subarray(length);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return head;
  }

  /**
   * One line without its `\r\n` (or bare `\n`), at most `maxLength` bytes: a peer that never
   * ends its line cannot make the buffer grow without bound. Undefined at a clean end.
   */
  async line(maxLength: number): Promise<Buffer | undefined> {
    for (;;) {
      const index = this.flat().indexOf(0x0a);
      if (index >= 0) {
        const line = this.take(index + 1).subarray(0, index);
        return line.at(-1) === 0x0d ? line.subarray(0, -1) : line;
      }
      if (this.buffered > maxLength) {
        throw new WardenError(
          'WARDEN_E_PROTOCOL',
          `Redis at ${this.peer} sent a line longer than ${maxLength} bytes`,
          {
            details: { peer: this.peer },
          },
        );
      }
      if (!(await this.more())) {
        if (this.buffered === 0) return undefined;
        throw this.truncated('a line');
      }
    }
  }

  /** Exactly `length` bytes, or WARDEN_E_REDIS_TRUNCATED when the stream ends first. */
  async exactly(length: number): Promise<Buffer> {
    while (this.buffered < length) {
      if (!(await this.more())) throw this.truncated(`${length} bytes`);
    }
    return this.take(length);
  }

  /** What is buffered (at most `max` bytes), waiting for some when nothing is; empty at the end. */
  async some(max: number): Promise<Buffer> {
    while (this.buffered === 0) {
      if (!(await this.more())) return Buffer.alloc(0);
    }
    return this.take(Math.min(max, this.buffered));
  }

  private truncated(what: string): WardenError {
    return new WardenError(
      'WARDEN_E_REDIS_TRUNCATED',
      `Redis at ${this.peer} closed the connection while ${what} were expected`,
      {
        details: { peer: this.peer },
      },
    );
  }
}
