import { Transform, type TransformCallback } from 'node:stream';
import binding from 'zstd-napi/binding.js';
import { WardenError } from '../errors.ts';
import { ZstdFrameReader } from './zstd-frames.ts';
import { ZstdPool } from './zstd-pool.ts';

/**
 * Frames up to this size are decompressed whole on the worker pool. Warden's own frames are one
 * 2 MiB block each; a larger or unsized frame (a server-compressed archive is one frame of
 * unknown size) is decompressed as a stream instead, so memory stays bounded.
 */
const MAX_PARALLEL_FRAME = 16 * 1024 * 1024;

/**
 * Decompresses a zstd stream, frames in parallel on the worker pool (one per core) while the main
 * thread goes on with what it writes, emitting the output in order. At most pool size + 1 frames
 * are in flight. From the first frame that cannot be handed out whole on, the rest of the stream
 * is decompressed here as a stream. A truncated stream fails at the end.
 */
export class ParallelZstdDecompressor extends Transform {
  private readonly pool = ZstdPool.get();
  private readonly frames = new ZstdFrameReader(MAX_PARALLEL_FRAME);
  private readonly inFlight: Array<Promise<Buffer>> = [];
  /** Set while output waits for the consumer to read (the readable side is full). */
  private wakeProducer: (() => void) | undefined;
  private streaming:
    { dctx: InstanceType<typeof binding.DCtx>; output: Buffer; inFrame: boolean } | undefined;

  constructor() {
    // Chunks are handed out one by one, as decompressed (an async iterator over a byte-mode
    // stream would get everything buffered concatenated into a new buffer instead), so a
    // consumer may give BlockPool chunks back once done with them; at most two wait unread.
    super({ readableObjectMode: true, readableHighWaterMark: 2 });
  }

  override _read(size: number): void {
    const wake = this.wakeProducer;
    this.wakeProducer = undefined;
    wake?.();
    super._read(size);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.accept(chunk).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    (async () => {
      while (this.inFlight.length > 0) await this.deliver(await this.inFlight.shift()!);
      if (this.frames.pendingBytes > 0 || this.streaming?.inFrame) {
        throw new WardenError('WARDEN_E_REPO_CORRUPT', 'zstd stream ends in the middle of a frame');
      }
    })().then(() => callback(), callback);
  }

  private async accept(chunk: Buffer): Promise<void> {
    if (this.streaming) {
      this.decompressStream(chunk);
      return;
    }
    for (const frame of this.frames.push(chunk)) {
      const pending = this.pool.decompress(frame.bytes, frame.contentSize!);
      pending.catch(() => undefined); // surfaced when awaited in order
      this.inFlight.push(pending);
      if (this.inFlight.length > this.pool.size) await this.deliver(await this.inFlight.shift()!);
    }
    if (this.frames.streamingNeeded) {
      while (this.inFlight.length > 0) await this.deliver(await this.inFlight.shift()!);
      this.streaming = {
        dctx: new binding.DCtx(),
        output: Buffer.allocUnsafe(binding.dStreamOutSize()),
        inFrame: false,
      };
      for (const rest of this.frames.rest()) this.decompressStream(rest);
    }
  }

  /**
   * Hands `output` on, waiting while the consumer has enough unread: one input chunk may hold
   * many frames, and a Transform only holds back the next input, not what one chunk produces.
   */
  private async deliver(output: Buffer): Promise<void> {
    if (!this.push(output)) await new Promise<void>((resolve) => (this.wakeProducer = resolve));
  }

  private decompressStream(input: Buffer): void {
    const state = this.streaming!;
    let offset = 0;
    for (;;) {
      const [remaining, produced, consumed] = state.dctx.decompressStream(
        state.output,
        input.subarray(offset),
      );
      offset += consumed;
      state.inFrame = remaining !== 0;
      if (produced > 0) this.push(Buffer.from(state.output.subarray(0, produced)));
      // Done with this input once it is consumed and either the output buffer was not filled
      // up or a frame just ended (another call would read the next frame's missing header).
      if (offset >= input.length && (produced < state.output.length || remaining === 0)) return;
    }
  }
}
