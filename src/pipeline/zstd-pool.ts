import { createRequire } from 'node:module';
import os from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';

// Plain CommonJS so the worker needs no TypeScript loader; zstd-napi's native binding is passed
// in by path. The worker compresses into one reused scratch buffer and copies the frame out, and
// hands the input block back, so neither side accumulates garbage 4 MiB buffers between GCs.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const binding = require(workerData.bindingPath);
const cctx = new binding.CCtx();
cctx.setParameter(binding.CParameter.checksumFlag, 1);
let level = -1;
let scratch = Buffer.alloc(0);
parentPort.on('message', ({ id, data, level: wanted }) => {
  try {
    if (wanted !== level) {
      cctx.setParameter(binding.CParameter.compressionLevel, wanted);
      level = wanted;
    }
    const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const bound = binding.compressBound(input.length);
    // The scratch buffer is kept for block-sized inputs only; a larger one (a 16 MiB WAL
    // segment) gets a temporary buffer, so the worker's footprint stays small.
    let target = scratch;
    if (target.length < bound) {
      target = Buffer.allocUnsafe(bound);
      if (bound <= workerData.scratchLimit) scratch = target;
    }
    const length = cctx.compress2(target, input);
    const output = new Uint8Array(length);
    output.set(target.subarray(0, length));
    const owned = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
    parentPort.postMessage({ id, output, input: owned ? data.buffer : undefined }, owned ? [output.buffer, data.buffer] : [output.buffer]);
  } catch (error) {
    parentPort.postMessage({ id, error: String((error && error.message) || error) });
  }
});
`;

const BLOCK_BYTES = 4 * 1024 * 1024;
const FREE_BLOCKS_KEPT = 8;

interface Job {
  resolve(output: Buffer): void;
  reject(error: Error): void;
}

/**
 * A small pool of worker threads compressing independent blocks into zstd frames. A stream of
 * concatenated frames is a valid zstd stream, so blocks compress in parallel on every core while
 * the main thread keeps receiving. Workers are unref'd: an idle pool never holds the process.
 */
export class ZstdPool {
  private static shared: ZstdPool | undefined;
  private readonly workers: Worker[] = [];
  private readonly jobs = new Map<number, Job>();
  private nextId = 0;
  private nextWorker = 0;
  private readonly freeBlocks: Buffer[] = [];

  private constructor(size: number) {
    const require = createRequire(import.meta.url);
    const bindingPath = require.resolve('zstd-napi/binding.js');
    for (let i = 0; i < size; i += 1) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { bindingPath, scratchLimit: BLOCK_BYTES + 64 * 1024 },
      });
      worker.unref();
      worker.on(
        'message',
        (message: { id: number; output?: Uint8Array; input?: ArrayBuffer; error?: string }) => {
          // Only whole blocks are reused (a flushed tail block is smaller).
          if (message.input?.byteLength === BLOCK_BYTES && this.freeBlocks.length < FREE_BLOCKS_KEPT) {
            this.freeBlocks.push(Buffer.from(message.input));
          }
          const job = this.jobs.get(message.id);
          this.jobs.delete(message.id);
          if (!job) return;
          if (message.error !== undefined || !message.output)
            job.reject(new Error(`zstd worker: ${message.error}`));
          else
            job.resolve(
              Buffer.from(message.output.buffer, message.output.byteOffset, message.output.byteLength),
            );
        },
      );
      worker.on('error', (error) => {
        for (const job of this.jobs.values()) job.reject(error);
        this.jobs.clear();
      });
      this.workers.push(worker);
    }
  }

  /** One pool per process, one worker per core (at least two). */
  static get(): ZstdPool {
    ZstdPool.shared ??= new ZstdPool(Math.max(2, os.availableParallelism()));
    return ZstdPool.shared;
  }

  get size(): number {
    return this.workers.length;
  }

  /** A 4 MiB block to fill, reused from blocks the workers handed back when possible. */
  takeBlock(): Buffer {
    return this.freeBlocks.pop() ?? Buffer.allocUnsafe(BLOCK_BYTES);
  }

  /** Compresses one block into a zstd frame. `block` is transferred when it owns its memory. */
  compress(block: Buffer, level: number): Promise<Buffer> {
    const id = this.nextId++;
    const worker = this.workers[this.nextWorker++ % this.workers.length]!;
    const ownsMemory = block.byteOffset === 0 && block.byteLength === block.buffer.byteLength;
    return new Promise<Buffer>((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ id, data: block, level }, ownsMemory ? [block.buffer as ArrayBuffer] : []);
    }).finally(() => {
      if (![...this.jobs.keys()].length) for (const w of this.workers) w.unref();
    });
  }
}

/**
 * A Transform that cuts its input into 4 MiB blocks, compresses them on the pool and emits the
 * frames in input order. At most pool size + 1 blocks are in flight (bounded memory).
 */
export class ParallelZstdCompressor extends Transform {
  private readonly pool = ZstdPool.get();
  private block = this.pool.takeBlock();
  private filled = 0;
  private readonly inFlight: Array<Promise<Buffer>> = [];

  constructor(private readonly level: number) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.accept(chunk).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    (async () => {
      if (this.filled > 0) this.dispatch();
      while (this.inFlight.length > 0) this.push(await this.inFlight.shift()!);
    })().then(() => callback(), callback);
  }

  private async accept(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(chunk.length - offset, BLOCK_BYTES - this.filled);
      chunk.copy(this.block, this.filled, offset, offset + n);
      this.filled += n;
      offset += n;
      if (this.filled === BLOCK_BYTES) {
        this.dispatch();
        if (this.inFlight.length > this.pool.size) this.push(await this.inFlight.shift()!);
      }
    }
  }

  private dispatch(): void {
    const block = this.filled === BLOCK_BYTES ? this.block : Buffer.from(this.block.subarray(0, this.filled));
    const pending = this.pool.compress(block, this.level);
    pending.catch(() => undefined); // surfaced when awaited in order
    this.inFlight.push(pending);
    this.block = this.pool.takeBlock();
    this.filled = 0;
  }
}
