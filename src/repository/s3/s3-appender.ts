import type { Appender } from '../object-store.ts';

/**
 * The partial WAL segment on S3, which has no append: the bytes live in memory (at most one
 * segment, 16 MiB by default) and every `sync()` uploads the whole object again with one
 * PutObject, so what `sync()` promises durable is exactly what the last upload stored. Syncs
 * with nothing new since the last upload cost nothing.
 */
export class S3Appender implements Appender {
  private buffer: Buffer;
  private length: number;
  private dirty = false;

  constructor(
    existing: Buffer,
    private readonly upload: (data: Buffer) => Promise<void>,
  ) {
    this.buffer = Buffer.alloc(Math.max(existing.length, 64 * 1024));
    existing.copy(this.buffer);
    this.length = existing.length;
  }

  get size(): number {
    return this.length;
  }

  /** Each sync re-uploads the segment: at most about once a second. */
  readonly syncIntervalMs = 1000;

  async append(data: Buffer): Promise<void> {
    if (this.length + data.length > this.buffer.length) {
      const grown = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + data.length));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    data.copy(this.buffer, this.length);
    this.length += data.length;
    this.dirty = true;
  }

  async sync(): Promise<void> {
    if (!this.dirty) return;
    // Mark clean first: bytes appended while the upload runs make it dirty again.
    this.dirty = false;
    try {
      await this.upload(Buffer.from(this.buffer.subarray(0, this.length)));
    } catch (error) {
      this.dirty = true;
      throw error;
    }
  }

  async truncate(size: number): Promise<void> {
    if (size < this.length) {
      this.buffer.fill(0, size, this.length);
      this.length = size;
      this.dirty = true;
    }
  }

  /** Drops the in-memory copy; what was not synced is not durable, as on the filesystem. */
  async close(): Promise<void> {
    this.buffer = Buffer.alloc(0);
    this.length = 0;
    this.dirty = false;
  }
}
