import { once } from 'node:events';
import { pipeline, type Readable, type Transform } from 'node:stream';
import type { ObjectStore } from '../repository/object-store.ts';
import type { StoredObject } from '../repository/backup-catalog.ts';
import { createCompressor, type Compression } from './compression.ts';
import { createHash } from 'node:crypto';
import { BlockPool } from './block-pool.ts';
import type { AgeRecipient } from './encryption/age-keys.ts';
import { AgeEncryptStream } from './encryption/age-stream.ts';
import { encryptionRecord } from './encryption/repository-keys.ts';

/**
 * Streams bytes into one repository object through compression, encryption (an age file to
 * `recipients`, when given) and a SHA-256 of the stored bytes, with backpressure: `write`
 * waits while the compressor or the store lags.
 */
export class ObjectSink {
  private readonly compressor: Transform;
  private readonly stored: Promise<{ size: number }>;
  /** Settles with the store: what a waiting write() races the compressor's drain against. */
  private readonly storeDone: Promise<void>;
  private readonly hash = createHash('sha256');
  private rawSize = 0;

  constructor(
    store: ObjectStore,
    readonly key: string,
    compression: Compression,
    level?: number,
    signal?: AbortSignal,
    private readonly recipients?: readonly AgeRecipient[],
  ) {
    this.compressor = createCompressor(compression, level);
    // An abort (or a compressor failure) can come before the store has started reading, when no
    // consumer listens yet: the error then reaches the caller through the store's read of the
    // destroyed stream (write()/finish()), never as an uncaught 'error' event.
    this.compressor.on('error', () => undefined);
    const hash = this.hash;
    let compressed: Readable = this.compressor;
    if (recipients?.length) {
      const encryptor = new AgeEncryptStream(recipients);
      // Errors reach the consumer below through the encryptor, which pipeline() destroys too.
      pipeline(this.compressor, encryptor, () => undefined);
      compressed = encryptor;
    }
    const recycle = store.putConsumesChunks === true ? BlockPool.get() : undefined;
    this.stored = store.put(
      key,
      (async function* hashed() {
        for await (const chunk of compressed as AsyncIterable<Buffer>) {
          hash.update(chunk);
          yield chunk;
          // The store has written it (it asked for the next): a pooled frame goes back.
          if (recycle?.owns(chunk)) recycle.giveBack(chunk.buffer);
        }
      })(),
      signal ? { signal } : {},
    );
    // Surface store failures through write()/finish() rather than as an unhandled rejection.
    this.stored.catch((error: unknown) => this.compressor.destroy(error as Error));
    // Made once and marked handled: a write() whose drain wins the race would otherwise leave a
    // fresh derived promise that rejects unobserved when the store fails later (an abort).
    this.storeDone = this.stored.then(() => undefined);
    this.storeDone.catch(() => undefined);
  }

  /**
   * When the store fails (disk full), its `put` stops reading, and leaving the loop over the
   * compressed stream destroys that stream with a bare AbortError — which reaches `write` before
   * the store's own rejection does. The store's error is the cause; the AbortError only its echo.
   */
  private async firstError(error: unknown): Promise<unknown> {
    if ((error as Error | undefined)?.name !== 'AbortError') return error;
    const storeError = await this.stored.then(
      () => undefined,
      (cause: unknown) => cause,
    );
    return storeError ?? error;
  }

  async write(chunk: Buffer): Promise<void> {
    this.rawSize += chunk.length;
    try {
      if (!this.compressor.write(chunk)) {
        await Promise.race([once(this.compressor, 'drain'), this.storeDone]);
      }
    } catch (error) {
      throw await this.firstError(error);
    }
  }

  async finish(): Promise<StoredObject> {
    this.compressor.end();
    let size: number;
    try {
      ({ size } = await this.stored);
    } catch (error) {
      throw await this.firstError(error);
    }
    return {
      key: this.key,
      size,
      sha256: this.hash.digest('hex'),
      rawSize: this.rawSize,
      ...(this.recipients?.length ? { encryption: encryptionRecord(this.recipients) } : {}),
    };
  }

  abort(error: Error): void {
    this.compressor.destroy(error);
  }

  /** Aborts, then waits until the store has given the object up (a temp file is removed). */
  async abandon(error: Error): Promise<void> {
    this.abort(error);
    await this.stored.catch(() => undefined);
  }
}
