import { createRequire } from 'node:module';
import os from 'node:os';
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { WardenError } from '../errors.ts';
import { BLOCK_BYTES, BlockPool } from './block-pool.ts';
import { AGE_WORKER_SOURCE } from './encryption/age-worker-source.ts';

/** Input memory for one frame: what a block of incompressible data compresses to, and some. */
const FRAME_INPUT_BYTES = BLOCK_BYTES + 64 * 1024;

// Plain CommonJS so the worker needs no TypeScript loader; zstd-napi's native binding is passed
// in by path. The worker compresses into one reused scratch buffer and copies the frame out, and
// hands transferred input memory back, so neither side accumulates garbage block-sized buffers between
// GCs. An input whose frame may not fit the scratch buffer (a 16 MiB WAL segment) is compressed
// as a stream through it, so the worker never allocates more than one block's worth. It also
// decompresses whole frames whose size the header gives (restore reads archives in parallel), and
// seals and opens runs of age STREAM chunks (encrypted backups and restores).
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
${AGE_WORKER_SOURCE}
const binding = require(workerData.bindingPath);
const cctx = new binding.CCtx();
cctx.setParameter(binding.CParameter.checksumFlag, 1);
let level = undefined;
const scratch = Buffer.allocUnsafe(binding.compressBound(workerData.blockBytes));
function compress(input, into) {
  if (into && binding.compressBound(input.length) <= into.byteLength) {
    const output = new Uint8Array(into);
    return output.subarray(0, cctx.compress2(output, input));
  }
  if (binding.compressBound(input.length) <= scratch.length) {
    const length = cctx.compress2(scratch, input);
    const output = new Uint8Array(length);
    output.set(scratch.subarray(0, length));
    return output;
  }
  const pieces = [];
  let total = 0;
  let consumed = 0;
  for (;;) {
    const [remaining, produced, used] = cctx.compressStream2(scratch, input.subarray(consumed), binding.EndDirective.end);
    consumed += used;
    pieces.push(Buffer.from(scratch.subarray(0, produced)));
    total += produced;
    if (remaining === 0) break;
  }
  const output = new Uint8Array(total);
  let offset = 0;
  for (const piece of pieces) { output.set(piece, offset); offset += piece.length; }
  return output;
}
const dctx = new binding.DCtx();
function decompress(input, size, into) {
  const output = into ? new Uint8Array(into, 0, size) : new Uint8Array(size);
  const length = dctx.decompress(output, input);
  if (length !== size) throw new Error('frame decompressed to ' + length + ' bytes, its header says ' + size);
  return output;
}
parentPort.on('message', ({ id, op, data, level: wanted, size, into, transferred, key, counter, final }) => {
  try {
    const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let output;
    if (op === 'open') {
      // Opened in place: the memory goes back as the output (all of it when a chunk failed).
      const { length, failed } = ageOpen(key, counter, final, input);
      output = new Uint8Array(data.buffer, data.byteOffset, failed === undefined ? length : data.byteLength);
      parentPort.postMessage({ id, output, failed }, [output.buffer]);
      return;
    }
    if (op === 'seal') {
      output = new Uint8Array(into, 0, ageSeal(key, counter, final, input, Buffer.from(into)));
    } else if (op === 'decompress') {
      output = decompress(input, size, into);
    } else {
      if (wanted !== level) {
        cctx.setParameter(binding.CParameter.compressionLevel, wanted);
        level = wanted;
      }
      output = compress(input, into);
    }
    const returned = transferred ? data.buffer : undefined;
    parentPort.postMessage({ id, output, input: returned }, returned ? [output.buffer, returned] : [output.buffer]);
  } catch (error) {
    cctx.reset(binding.ResetDirective.sessionOnly);
    dctx.reset(binding.ResetDirective.sessionOnly);
    parentPort.postMessage({ id, error: String((error && error.message) || error) });
  }
});
`;

interface Job {
  resolve(output: Buffer, failed?: number): void;
  reject(error: Error): void;
  /** The output is BlockPool memory (a block decompressed or a frame compressed into it). */
  pooledOutput: boolean;
  worker: Worker;
  op: WorkerOp;
}

type WorkerOp = 'compress' | 'decompress' | 'seal' | 'open';

/** A run of age chunks opened on a worker: `plain`, or the chunk that failed authentication. */
export type OpenedChunks = { plain: Buffer; failed?: undefined } | { failed: number; sealed: Buffer };

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

  private constructor(
    size: number,
    private readonly blocks: BlockPool,
  ) {
    const require = createRequire(import.meta.url);
    this.bindingPath = require.resolve('zstd-napi/binding.js');
    for (let i = 0; i < size; i += 1) this.workers.push(this.spawn());
  }

  private readonly bindingPath: string;

  private spawn(): Worker {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { bindingPath: this.bindingPath, blockBytes: BLOCK_BYTES },
    });
    worker.unref();
    worker.on(
      'message',
      (message: {
        id: number;
        output?: Uint8Array;
        input?: ArrayBuffer;
        error?: string;
        failed?: number;
      }) => {
        if (message.input) this.blocks.giveBack(message.input);
        const job = this.jobs.get(message.id);
        this.jobs.delete(message.id);
        if (!job) return;
        if (message.error !== undefined || !message.output)
          job.reject(new Error(`zstd worker: ${message.error}`));
        else {
          const { buffer, byteOffset, byteLength } = message.output;
          if (job.pooledOutput) this.blocks.adopt(buffer as ArrayBuffer);
          job.resolve(Buffer.from(buffer, byteOffset, byteLength), message.failed);
        }
      },
    );
    // A worker that dies (an uncaught error, out of memory, terminated) fails exactly the jobs it
    // held, with an error naming the operation, and is replaced: later jobs never wait on it.
    const failJobs = (cause: Error | undefined, exitCode?: number) => {
      for (const [id, job] of this.jobs) {
        if (job.worker !== worker) continue;
        this.jobs.delete(id);
        job.reject(
          new WardenError(
            'WARDEN_E_INTERNAL',
            `a pipeline worker thread ${exitCode === undefined ? 'failed' : `exited (code ${exitCode})`} during ${job.op}`,
            { details: { problem: 'worker-failed', op: job.op, exitCode }, ...(cause ? { cause } : {}) },
          ),
        );
      }
      const index = this.workers.indexOf(worker);
      if (index !== -1) this.workers[index] = this.spawn();
    };
    worker.on('error', (error) => failJobs(error));
    worker.on('exit', (code) => failJobs(undefined, code));
    return worker;
  }

  /** One pool per process, one worker per core (at least two). */
  static get(): ZstdPool {
    ZstdPool.shared ??= new ZstdPool(Math.max(2, os.availableParallelism()), BlockPool.get());
    return ZstdPool.shared;
  }

  get size(): number {
    return this.workers.length;
  }

  /**
   * Compresses `data` into one zstd frame. Its memory is transferred to the worker (the caller
   * gives the buffer up) when it is a block of the shared BlockPool or owns its whole
   * ArrayBuffer; otherwise it is copied. Transferred blocks return to the BlockPool. With
   * `pooledOutput`, a block's frame is written into BlockPool memory, which whoever consumes
   * the frame last may give back (see ObjectSink).
   */
  compress(data: Buffer, level: number, pooledOutput = false): Promise<Buffer> {
    const memory = data.buffer as ArrayBuffer;
    const transferred =
      this.blocks.owns(data) || (data.byteOffset === 0 && data.byteLength === memory.byteLength);
    const into =
      pooledOutput && data.length <= BLOCK_BYTES ? this.blocks.take(FRAME_INPUT_BYTES).buffer : undefined;
    return this.run({ op: 'compress', data, level, transferred, into });
  }

  /**
   * Decompresses one complete zstd frame of `contentSize` bytes (verifying its checksum, when it
   * has one). The frame is copied into recycled memory that travels to the worker and back, and
   * a frame of one block is decompressed into a BlockPool block: the output, which the
   * consumer may give back. Nothing block-sized is left to the GC on either side.
   */
  decompress(frame: Buffer, contentSize: number): Promise<Buffer> {
    let data: Buffer;
    if (frame.length <= FRAME_INPUT_BYTES) {
      data = this.blocks.take(FRAME_INPUT_BYTES).subarray(0, frame.length);
      frame.copy(data);
    } else {
      data = Buffer.allocUnsafeSlow(frame.length); // its own memory, to transfer
      frame.copy(data);
    }
    const into = contentSize <= BLOCK_BYTES ? this.blocks.take().buffer : undefined;
    return this.run({ op: 'decompress', data, size: contentSize, transferred: true, into });
  }

  /**
   * Seals a run of age STREAM chunks (`plain`: whole 64 KiB chunks, the last one may be short)
   * starting at `counter`; `final` marks the run's last chunk as the file's last. `plain` is
   * handed over (a BlockPool block goes back to the pool); the sealed run is BlockPool memory
   * that its last consumer may give back.
   */
  seal(key: Buffer, counter: number, final: boolean, plain: Buffer): Promise<Buffer> {
    const chunks = Math.max(1, Math.ceil(plain.length / AGE_CHUNK));
    // One size for every run of a block or less, so the pool keeps a few buffers of one size.
    const into =
      chunks <= AGE_RUN_CHUNKS
        ? this.blocks.take(sealedRunBytes(AGE_RUN_CHUNKS)).buffer
        : new ArrayBuffer(sealedRunBytes(chunks));
    const memory = plain.buffer as ArrayBuffer;
    const transferred =
      this.blocks.owns(plain) || (plain.byteOffset === 0 && plain.byteLength === memory.byteLength);
    return this.run({ op: 'seal', data: plain, transferred, into, key, counter, final });
  }

  /**
   * Opens a run of sealed age chunks (see `seal`). `sealed` must own its memory (it is
   * transferred, decrypted in place and comes back as the plaintext).
   */
  async open(key: Buffer, counter: number, final: boolean, sealed: Buffer): Promise<OpenedChunks> {
    let failed: number | undefined;
    const output = await this.run(
      { op: 'open', data: sealed, transferred: true, key, counter, final },
      (index) => {
        failed = index;
      },
    );
    return failed === undefined ? { plain: output } : { failed, sealed: output };
  }

  private run(
    message: {
      op: WorkerOp;
      data: Buffer;
      level?: number;
      size?: number;
      transferred: boolean;
      /** Decompress into this BlockPool block (transferred, and back as the output). */
      into?: ArrayBufferLike;
      key?: Buffer;
      counter?: number;
      final?: boolean;
    },
    onFailedChunk?: (index: number) => void,
  ): Promise<Buffer> {
    const id = this.nextId++;
    const worker = this.workers[this.nextWorker++ % this.workers.length]!;
    return new Promise<Buffer>((resolve, reject) => {
      this.jobs.set(id, {
        resolve: (output, failed) => {
          if (failed !== undefined) onFailedChunk?.(failed);
          resolve(output);
        },
        reject,
        pooledOutput: message.into !== undefined,
        worker,
        op: message.op,
      });
      worker.ref();
      const transfer = [
        ...(message.transferred ? [message.data.buffer as ArrayBuffer] : []),
        ...(message.into ? [message.into as ArrayBuffer] : []),
      ];
      worker.postMessage({ id, ...message }, transfer);
    }).finally(() => {
      if (this.jobs.size === 0) for (const w of this.workers) w.unref();
    });
  }
}

const AGE_CHUNK = 64 * 1024;
/** age chunks per run on a worker: one block of plaintext. */
export const AGE_RUN_CHUNKS = BLOCK_BYTES / AGE_CHUNK;
/** Bytes of a run of `chunks` sealed age chunks at most (each chunk gains a 16-byte tag). */
export function sealedRunBytes(chunks: number): number {
  return chunks * (AGE_CHUNK + 16);
}

/** A BlockPool block at least this full is compressed in place rather than copied. */
const ZERO_COPY_MIN = BLOCK_BYTES / 2;

/**
 * A Transform that cuts its input into blocks (BLOCK_BYTES), compresses them on the pool and emits the
 * frames in input order. At most pool size + 1 blocks are in flight (bounded memory).
 *
 * Input chunks that are (mostly full) BlockPool blocks — what the replication client coalesces
 * BASE_BACKUP data into — become frames as they are, without a copy: writing such a chunk hands
 * its memory over. Other input is copied into blocks.
 */
export class ParallelZstdCompressor extends Transform {
  private readonly pool = ZstdPool.get();
  private readonly blocks = BlockPool.get();
  private block: Buffer | undefined;
  private filled = 0;
  private readonly inFlight: Array<Promise<Buffer>> = [];

  constructor(private readonly level: number) {
    // Frames are handed out one by one, as compressed (in pool memory that the last consumer
    // may give back): an async iterator over a byte-mode stream would get buffered frames
    // concatenated into a new buffer instead.
    super({ writableHighWaterMark: 1024 * 1024, readableObjectMode: true, readableHighWaterMark: 2 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.accept(chunk).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    (async () => {
      if (this.filled > 0) this.dispatch(this.block!.subarray(0, this.filled));
      this.block = undefined;
      this.filled = 0;
      while (this.inFlight.length > 0) this.push(await this.inFlight.shift()!);
    })().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.block) this.blocks.giveBack(this.block.buffer);
    this.block = undefined;
    callback(error);
  }

  private async accept(chunk: Buffer): Promise<void> {
    const pooled = this.blocks.owns(chunk);
    if (pooled && chunk.length >= ZERO_COPY_MIN) {
      // A short chunk before it (the client pushes its block early when another message comes
      // between archive data, e.g. a progress report) ends its frame here. Copying the pooled
      // chunk into that block instead would shift every later block by the same offset: all
      // the rest of the archive would be copied a second time.
      if (this.filled > 0) {
        this.dispatch(this.block!.subarray(0, this.filled));
        this.block = undefined;
        this.filled = 0;
        await this.limitInFlight();
      }
      this.dispatch(chunk);
      await this.limitInFlight();
      return;
    }
    let offset = 0;
    while (offset < chunk.length) {
      this.block ??= this.blocks.take();
      const n = Math.min(chunk.length - offset, BLOCK_BYTES - this.filled);
      chunk.copy(this.block, this.filled, offset, offset + n);
      this.filled += n;
      offset += n;
      if (this.filled === BLOCK_BYTES) {
        this.dispatch(this.block);
        this.block = undefined;
        this.filled = 0;
        await this.limitInFlight();
      }
    }
    if (pooled) this.blocks.giveBack(chunk.buffer);
  }

  private dispatch(block: Buffer): void {
    const pending = this.pool.compress(block, this.level, true);
    pending.catch(() => undefined); // surfaced when awaited in order
    this.inFlight.push(pending);
  }

  private async limitInFlight(): Promise<void> {
    if (this.inFlight.length > this.pool.size) this.push(await this.inFlight.shift()!);
  }
}
