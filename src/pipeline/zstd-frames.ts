import { WardenError } from '../errors.ts';

const FRAME_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC = 0x184d2a50; // low 4 bits free
const BLOCK_HEADER_BYTES = 3;
const CHECKSUM_BYTES = 4;

/** One complete zstd frame cut from a stream. */
export interface ZstdFrame {
  /** The frame's bytes, header to checksum: decompressible on its own. */
  bytes: Buffer;
  /** Decompressed size from the frame header; undefined when the header does not say. */
  contentSize: number | undefined;
}

interface FrameHeader {
  headerBytes: number;
  contentSize: number | undefined;
  checksum: boolean;
}

/**
 * Cuts a zstd stream (as Warden's compressor writes it: independent frames, each with its content
 * size) into whole frames by walking the frame and block headers (RFC 8878), without
 * decompressing, so the frames can be decompressed in parallel. Skippable frames are dropped.
 *
 * `push` takes the next bytes and returns the frames they complete. Before the first frame of a
 * kind it cannot hand out (no content size, or too large to hold), it stops: `rest()` returns the
 * bytes from that frame on, for a streaming decompressor.
 */
export class ZstdFrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Header of the frame at the start of `chunks`, once read. */
  private header: FrameHeader | undefined;
  /** Offset (within the buffered bytes) of the next block header of that frame. */
  private scan = 0;
  private stopped = false;

  constructor(
    /** Frames decompressing to more than this (or not saying) stop the reader. */
    private readonly maxContentSize: number,
  ) {}

  /** True once a frame was met that must be decompressed as a stream (see `rest`). */
  get streamingNeeded(): boolean {
    return this.stopped;
  }

  /** Bytes buffered but not yet returned as frames. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): ZstdFrame[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: ZstdFrame[] = [];
    while (!this.stopped) {
      const frame = this.nextFrame();
      if (frame === undefined) break;
      if (frame !== null) frames.push(frame);
    }
    return frames;
  }

  /** Everything not returned as a frame, in order (after `streamingNeeded`). */
  rest(): Buffer[] {
    const rest = this.chunks;
    this.chunks = [];
    this.buffered = 0;
    return rest;
  }

  /** A frame, null for a skipped frame, undefined when more bytes are needed (or stopped). */
  private nextFrame(): ZstdFrame | null | undefined {
    if (!this.header) {
      if (this.buffered < 8) return undefined;
      const magic = this.uint32(0);
      if ((magic & 0xfffffff0) >>> 0 === SKIPPABLE_MAGIC) {
        const length = 8 + this.uint32(4);
        if (this.buffered < length) return undefined;
        this.take(length);
        return null;
      }
      if (magic !== FRAME_MAGIC) throw notZstd(`bad frame magic 0x${magic.toString(16)}`);
      const header = this.readHeader();
      if (!header) return undefined;
      if (header.contentSize === undefined || header.contentSize > this.maxContentSize) {
        this.stopped = true;
        return undefined;
      }
      this.header = header;
      this.scan = header.headerBytes;
    }
    for (;;) {
      if (this.scan + BLOCK_HEADER_BYTES > this.buffered) return undefined;
      const block = this.byte(this.scan) | (this.byte(this.scan + 1) << 8) | (this.byte(this.scan + 2) << 16);
      const last = (block & 1) === 1;
      const type = (block >>> 1) & 3;
      if (type === 3) throw notZstd('reserved block type');
      const size = type === 1 /* RLE: one byte repeated */ ? 1 : block >>> 3;
      const end = this.scan + BLOCK_HEADER_BYTES + size;
      if (!last) {
        this.scan = end;
        continue;
      }
      const frameEnd = end + (this.header.checksum ? CHECKSUM_BYTES : 0);
      if (frameEnd > this.buffered) return undefined;
      const frame = { bytes: this.take(frameEnd), contentSize: this.header.contentSize };
      this.header = undefined;
      this.scan = 0;
      return frame;
    }
  }

  private readHeader(): FrameHeader | undefined {
    const descriptor = this.byte(4);
    const contentSizeFlag = descriptor >>> 6;
    const singleSegment = (descriptor & 0x20) !== 0;
    if ((descriptor & 0x08) !== 0) throw notZstd('reserved frame header bit set');
    const dictionaryBytes = [0, 1, 2, 4][descriptor & 3]!;
    const sizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][contentSizeFlag]!;
    const sizeAt = 5 + (singleSegment ? 0 : 1) + dictionaryBytes;
    const headerBytes = sizeAt + sizeBytes;
    if (this.buffered < headerBytes) return undefined;
    let contentSize: number | undefined;
    if (sizeBytes === 1) contentSize = this.byte(sizeAt);
    else if (sizeBytes === 2) contentSize = this.byte(sizeAt) + (this.byte(sizeAt + 1) << 8) + 256;
    else if (sizeBytes === 4) contentSize = this.uint32(sizeAt);
    else if (sizeBytes === 8) contentSize = this.uint32(sizeAt) + this.uint32(sizeAt + 4) * 2 ** 32;
    return { headerBytes, contentSize, checksum: (descriptor & 0x04) !== 0 };
  }

  private byte(offset: number): number {
    for (const chunk of this.chunks) {
      if (offset < chunk.length) return chunk[offset]!;
      offset -= chunk.length;
    }
    throw new RangeError('read past the buffered bytes');
  }

  private uint32(offset: number): number {
    return (
      (this.byte(offset) |
        (this.byte(offset + 1) << 8) |
        (this.byte(offset + 2) << 16) |
        (this.byte(offset + 3) << 24)) >>>
      0
    );
  }

  /** Removes and returns the first `length` buffered bytes as one buffer. */
  private take(length: number): Buffer {
    const pieces: Buffer[] = [];
    let needed = length;
    while (needed > 0) {
      const chunk = this.chunks[0]!;
      if (chunk.length <= needed) {
        pieces.push(chunk);
        this.chunks.shift();
        needed -= chunk.length;
      } else {
        pieces.push(chunk.subarray(0, needed));
        this.chunks[0] = chunk.subarray(needed);
        needed = 0;
      }
    }
    this.buffered -= length;
    return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, length);
  }
}

function notZstd(reason: string): WardenError {
  return new WardenError('WARDEN_E_REPO_CORRUPT', `not a valid zstd stream: ${reason}`);
}
