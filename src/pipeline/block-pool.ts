/**
 * The size of a compression block: what one worker compresses into one independent frame. 2 MiB
 * frames store pgbench data within 0.5 % of 4 MiB ones (zstd level 1 looks back 512 KiB at
 * most) and halve the blocks in circulation (filling, queued, in flight, free).
 */
export const BLOCK_BYTES = 2 * 1024 * 1024;

/**
 * Recycled buffers for the byte paths. Blocks are shared by the replication client (which
 * coalesces BASE_BACKUP data straight into them) and the compressor (which hands them to a worker
 * without copying; the worker gives the memory back); the WAL receiver recycles its segment
 * buffers the same way. Reusing a few buffers instead of allocating fresh ones keeps page faults,
 * external-memory GC pressure and peak RSS down while gigabytes stream through: a fresh buffer
 * per block or segment stays resident until a GC that V8 only starts after tens of MiB.
 */
export class BlockPool {
  private static shared: BlockPool | undefined;
  private readonly free = new Map<number, ArrayBuffer[]>();
  /** Memory this pool issued: a view of it may be handed to a worker without a copy. */
  private readonly issued = new WeakSet<ArrayBufferLike>();

  /** `keep`: free buffers kept per size up to two blocks (larger ones, such as WAL segments, keep 1). */
  constructor(private readonly keep = 4) {}

  static get(): BlockPool {
    BlockPool.shared ??= new BlockPool();
    return BlockPool.shared;
  }

  /** A buffer of `size` bytes to fill (contents undefined), reused when one is free. */
  take(size = BLOCK_BYTES): Buffer {
    return Buffer.from(this.acquire(size).memory);
  }

  /**
   * A zero-filled buffer of `size` bytes. Fresh memory is left as the kernel maps it (zero pages
   * that only become resident once written), so a 16 MiB WAL segment of which a catch-up fills
   * a few MiB costs only those; reused memory is resident already and is cleared.
   */
  takeZeroed(size: number): Buffer {
    const { memory, reused } = this.acquire(size);
    return reused ? Buffer.from(memory).fill(0) : Buffer.from(memory);
  }

  private acquire(size: number): { memory: ArrayBuffer; reused: boolean } {
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    const reused = list.pop();
    const memory = reused ?? new ArrayBuffer(size);
    this.issued.add(memory);
    return { memory, reused: reused !== undefined };
  }

  /** Counts memory as issued by this pool: a block a worker handed back, which is a new ArrayBuffer. */
  adopt(memory: ArrayBuffer): void {
    this.issued.add(memory);
  }

  /** Whether `chunk` views memory this pool issued (the caller owns the whole buffer). */
  owns(chunk: Uint8Array): boolean {
    return this.issued.has(chunk.buffer);
  }

  /**
   * Takes memory back once nobody reads it any more (also memory a worker returned after a
   * transfer, which arrives as a new ArrayBuffer). Only sizes this pool hands out are kept, up
   * to a few per size; the rest is left to the GC.
   */
  giveBack(memory: ArrayBufferLike): void {
    const list = this.free.get(memory.byteLength);
    if (!list || list.length >= (memory.byteLength <= 2 * BLOCK_BYTES ? this.keep : 1)) return;
    if (list.includes(memory as ArrayBuffer)) return;
    list.push(memory as ArrayBuffer);
  }

  /** Free buffers of `size` waiting to be reused (for tests). */
  freeCount(size = BLOCK_BYTES): number {
    return this.free.get(size)?.length ?? 0;
  }
}
