import { randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { BlockPool } from '../block-pool.ts';
import type { OpenedChunks } from '../zstd-pool.ts';
import { ageCorrupt } from './age-errors.ts';
import {
  CHUNK,
  inlineRunner,
  open,
  payloadKey,
  RUN_BYTES,
  SEALED,
  SEALED_RUN_BYTES,
  TAG,
  workerRunner,
  type ChunkRunner,
} from './age-chunks.ts';
import { buildHeader, openHeader, parseHeader, type ParsedHeader } from './age-header.ts';
import type { AgeIdentity, AgeRecipient } from './age-keys.ts';

export { CHUNK } from './age-chunks.ts';
const NONCE = 16;

export interface AgeStreamOptions {
  /**
   * Where runs of chunks are sealed or opened: on the worker pool, in parallel and off the event
   * loop (default), or `inlineRunner`, on the calling thread (small whole buffers then need no
   * workers).
   */
  runner?: ChunkRunner;
}

/**
 * A Transform whose output is runs of chunks that complete out of order (on workers) but are
 * handed on in order, at most `parallelism + 1` in flight, and no faster than the consumer
 * reads: a run is not awaited while two unread ones wait (readableHighWaterMark 2).
 */
abstract class OrderedRuns<T> extends Transform {
  protected readonly runner: ChunkRunner;
  protected readonly inFlight: Array<{ result: Promise<T>; deliver: (result: T) => Buffer | undefined }> = [];
  private wakeProducer: (() => void) | undefined;

  constructor(options: AgeStreamOptions) {
    // Runs are handed out one by one (an async iterator over a byte-mode stream would concatenate
    // what is buffered into a new buffer): a consumer may give sealed BlockPool runs back.
    super({ writableHighWaterMark: 1024 * 1024, readableObjectMode: true, readableHighWaterMark: 2 });
    this.runner = options.runner ?? workerRunner();
  }

  override _read(size: number): void {
    const wake = this.wakeProducer;
    this.wakeProducer = undefined;
    wake?.();
    super._read(size);
  }

  protected enqueue(result: Promise<T>, deliver: (result: T) => Buffer | undefined): void {
    result.catch(() => undefined); // surfaced when awaited in order
    this.inFlight.push({ result, deliver });
  }

  protected async limitInFlight(): Promise<void> {
    while (this.inFlight.length > this.runner.parallelism) await this.deliverNext();
  }

  protected async drain(): Promise<void> {
    while (this.inFlight.length > 0) await this.deliverNext();
  }

  private async deliverNext(): Promise<void> {
    const next = this.inFlight.shift()!;
    const output = next.deliver(await next.result);
    if (output && output.length > 0 && !this.push(output))
      await new Promise<void>((resolve) => (this.wakeProducer = resolve));
  }
}

/**
 * Encrypts a stream into an age v1 file. Plaintext is cut into runs of one block (32 chunks),
 * sealed on the worker pool; memory stays at the runs in flight.
 */
export class AgeEncryptStream extends OrderedRuns<Buffer> {
  private key: Buffer | undefined;
  private readonly blocks = BlockPool.get();
  private run: Buffer | undefined;
  private filled = 0;
  private counter = 0;

  constructor(
    private readonly recipients: readonly AgeRecipient[],
    options: AgeStreamOptions = {},
  ) {
    super(options);
  }

  private async start(): Promise<void> {
    const fileKey = randomBytes(16);
    const nonce = randomBytes(NONCE);
    const header = await buildHeader(this.recipients, fileKey);
    this.key = payloadKey(fileKey, nonce);
    this.push(Buffer.concat([header, nonce]));
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.accept(chunk).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    (async () => {
      if (!this.key) await this.start();
      this.dispatch(true);
      await this.drain();
    })().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.run) this.blocks.giveBack(this.run.buffer);
    this.run = undefined;
    callback(error);
  }

  private async accept(chunk: Buffer): Promise<void> {
    if (!this.key) await this.start();
    let offset = 0;
    while (offset < chunk.length) {
      // A full run is sealed only once more data proves its last chunk is not the final one.
      if (this.filled === RUN_BYTES) {
        this.dispatch(false);
        await this.limitInFlight();
      }
      this.run ??= this.blocks.take();
      const take = Math.min(RUN_BYTES - this.filled, chunk.length - offset);
      chunk.copy(this.run, this.filled, offset, offset + take);
      this.filled += take;
      offset += take;
    }
    // Copied in: a pooled block (a compressed frame, which nothing else holds once written
    // here) goes back to the pool.
    if (this.blocks.owns(chunk)) this.blocks.giveBack(chunk.buffer);
  }

  private dispatch(final: boolean): void {
    const plain = (this.run ?? this.blocks.take()).subarray(0, this.filled);
    this.enqueue(this.runner.seal(this.key!, this.counter, final, plain), (sealed) => sealed);
    this.counter += Math.max(1, Math.ceil(this.filled / CHUNK));
    this.run = undefined;
    this.filled = 0;
  }
}

export interface DecryptOptions extends AgeStreamOptions {
  identities: readonly AgeIdentity[];
  /** Repository object name, reported in errors (`details.object`). */
  object?: string;
}

/** Where a run of sealed chunks sits in the file. */
interface RunPlace {
  counter: number;
  /** Offset of its first chunk in the file. */
  offset: number;
  final: boolean;
  chunks: number;
  /** Sealed bytes of its last chunk. */
  lastBytes: number;
}

/**
 * Decrypts an age v1 file, runs of 32 chunks opened on the worker pool. Every chunk is
 * authenticated before its plaintext is passed on; truncation, reordered or changed chunks and
 * trailing bytes fail with WARDEN_E_REPO_CORRUPT and `details.problem` saying which.
 */
export class AgeDecryptStream extends OrderedRuns<OpenedChunks> {
  private head: Buffer[] = [];
  private headBytes = 0;
  private key: Buffer | undefined;
  private readonly blocks = BlockPool.get();
  private run: Buffer | undefined;
  private filled = 0;
  private counter = 0;
  /** File offset of the next run's first byte. */
  private consumed = 0;

  constructor(private readonly options: DecryptOptions) {
    super(options);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.key) {
      this.accept(chunk).then(() => callback(), callback);
      return;
    }
    this.head.push(chunk);
    this.headBytes += chunk.length;
    const data = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head);
    this.head = [data];
    let header: ParsedHeader | undefined;
    try {
      header = parseHeader(data, this.options.object);
    } catch (error) {
      callback(error as Error);
      return;
    }
    if (!header || data.length < header.length + NONCE) {
      callback();
      return;
    }
    const parsed = header;
    openHeader(parsed, this.options.identities, this.options.object)
      .then((fileKey) => {
        this.key = payloadKey(fileKey, data.subarray(parsed.length, parsed.length + NONCE));
        this.head = [];
        this.consumed = parsed.length + NONCE;
        return this.accept(data.subarray(parsed.length + NONCE));
      })
      .then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    this.finish().then(() => callback(), callback);
  }

  private async finish(): Promise<void> {
    const object = this.options.object;
    if (!this.key)
      throw ageCorrupt('truncated', 'the file ends inside its header', object, { bytes: this.headBytes });
    // The last run holds the final chunk: whatever follows its last full chunk, at least a tag.
    const lastBytes = this.filled === 0 ? 0 : this.filled - Math.floor((this.filled - 1) / SEALED) * SEALED;
    if (lastBytes < TAG) {
      if (this.filled > lastBytes) this.dispatch(false, this.filled - lastBytes);
      await this.drain();
      throw ageCorrupt(
        'truncated',
        `the file ends before its final chunk (after chunk ${this.counter})`,
        object,
        {
          chunk: this.counter,
        },
      );
    }
    this.dispatch(true, this.filled);
    await this.drain();
  }

  private async accept(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      // Only a run followed by more bytes is known not to hold the final chunk.
      if (this.filled === SEALED_RUN_BYTES) {
        this.dispatch(false, this.filled);
        await this.limitInFlight();
      }
      this.run ??= this.blocks.take(SEALED_RUN_BYTES);
      const take = Math.min(SEALED_RUN_BYTES - this.filled, chunk.length - offset);
      chunk.copy(this.run, this.filled, offset, offset + take);
      this.filled += take;
      offset += take;
    }
  }

  /** Opens the first `bytes` of the current run (whole chunks, or all of it when `final`). */
  private dispatch(final: boolean, bytes: number): void {
    const chunks = Math.ceil(bytes / SEALED);
    const place: RunPlace = {
      counter: this.counter,
      offset: this.consumed,
      final,
      chunks,
      lastBytes: bytes - (chunks - 1) * SEALED,
    };
    const sealed = this.run!.subarray(0, bytes);
    this.enqueue(this.runner.open(this.key!, this.counter, final, sealed), (opened) =>
      this.check(opened, place),
    );
    this.counter += chunks;
    this.consumed += bytes;
    this.run = undefined;
    this.filled = 0;
  }

  private check(opened: OpenedChunks, place: RunPlace): Buffer {
    if (opened.failed !== undefined) {
      const index = opened.failed;
      const sealed = opened.sealed.subarray(index * SEALED, (index + 1) * SEALED);
      throw this.diagnose(
        sealed,
        place.final && index === place.chunks - 1,
        place.counter + index,
        place.offset + index * SEALED,
      );
    }
    const last = place.counter + place.chunks - 1;
    if (place.final && place.lastBytes === TAG && last > 0)
      throw ageCorrupt('empty-last-chunk', 'the final chunk is empty', this.options.object, { chunk: last });
    return opened.plain;
  }

  /** Names why a chunk failed: cut short, moved, followed by extra bytes, or changed. */
  private diagnose(sealed: Buffer, atEnd: boolean, counter: number, offset: number): Error {
    const object = this.options.object;
    const key = this.key!;
    const at = { chunk: counter, offset };
    if (atEnd && open(key, counter, false, sealed))
      return ageCorrupt(
        'truncated',
        `the file ends after chunk ${counter} without its final chunk`,
        object,
        at,
      );
    if (!atEnd && open(key, counter, true, sealed))
      return ageCorrupt('trailing-data', `bytes follow the final chunk ${counter}`, object, at);
    for (let other = Math.max(0, counter - 64); other <= counter + 64; other += 1) {
      if (other === counter) continue;
      if (open(key, other, false, sealed) || open(key, other, true, sealed))
        return ageCorrupt(
          'chunks-reordered',
          `chunk ${counter} holds chunk ${other} (chunks reordered)`,
          object,
          {
            ...at,
            foundChunk: other,
          },
        );
    }
    return ageCorrupt(
      'chunk-authentication-failed',
      `chunk ${counter} fails authentication (bytes changed)`,
      object,
      at,
    );
  }
}

/** Encrypts a whole buffer (a WAL segment) in one go. */
export async function encryptBuffer(data: Buffer, recipients: readonly AgeRecipient[]): Promise<Buffer> {
  return collect(new AgeEncryptStream(recipients, { runner: inlineRunner }), data);
}

/** Decrypts a whole buffer; errors as AgeDecryptStream. */
export async function decryptBuffer(data: Buffer, options: DecryptOptions): Promise<Buffer> {
  return collect(new AgeDecryptStream({ runner: inlineRunner, ...options }), data);
}

async function collect(stream: Transform, data: Buffer): Promise<Buffer> {
  const parts: Buffer[] = [];
  stream.on('data', (part: Buffer) => parts.push(part));
  const done = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  stream.end(data);
  await done;
  return Buffer.concat(parts);
}

/**
 * Reads just the header of an age file and opens it with the identities (then stops reading):
 * the up-front key check before a restore writes anything.
 */
export async function probeHeader(source: AsyncIterable<Buffer>, options: DecryptOptions): Promise<void> {
  let data = Buffer.alloc(0);
  for await (const chunk of source) {
    data = Buffer.concat([data, chunk]);
    const header = parseHeader(data, options.object);
    if (header) {
      await openHeader(header, options.identities, options.object);
      return;
    }
  }
  throw ageCorrupt('truncated', 'the file ends inside its header', options.object);
}
