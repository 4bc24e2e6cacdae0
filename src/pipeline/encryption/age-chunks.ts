import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { BlockPool } from '../block-pool.ts';
import { AGE_RUN_CHUNKS, sealedRunBytes, ZstdPool, type OpenedChunks } from '../zstd-pool.ts';

/** age's STREAM: 64 KiB plaintext chunks, each sealed with its counter and a last-chunk flag. */
export const CHUNK = 64 * 1024;
export const TAG = 16;
export const SEALED = CHUNK + TAG;
/** Chunks sealed or opened as one job: one block of plaintext. */
export const RUN_CHUNKS = AGE_RUN_CHUNKS;
export const RUN_BYTES = RUN_CHUNKS * CHUNK;
export const SEALED_RUN_BYTES = sealedRunBytes(RUN_CHUNKS);

export function payloadKey(fileKey: Buffer, nonce: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32));
}

function chunkNonce(counter: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeUIntBE(counter, 5, 6);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

export function seal(key: Buffer, counter: number, last: boolean, plain: Buffer): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', key, chunkNonce(counter, last), { authTagLength: TAG });
  const out = Buffer.allocUnsafe(plain.length + TAG);
  cipher.update(plain).copy(out, 0);
  cipher.final();
  cipher.getAuthTag().copy(out, plain.length);
  return out;
}

export function open(key: Buffer, counter: number, last: boolean, sealed: Buffer): Buffer | null {
  const decipher = createDecipheriv('chacha20-poly1305', key, chunkNonce(counter, last), {
    authTagLength: TAG,
  });
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
  const plain = decipher.update(sealed.subarray(0, sealed.length - TAG));
  try {
    decipher.final();
    return plain;
  } catch {
    return null;
  }
}

/**
 * Seals and opens runs of consecutive chunks (`final`: the run's last chunk is the file's last).
 * Both hand the input over: the caller must not read it afterwards.
 */
export interface ChunkRunner {
  /** Runs that may be in flight at once, beyond the one being delivered. */
  readonly parallelism: number;
  seal(key: Buffer, counter: number, final: boolean, plain: Buffer): Promise<Buffer>;
  open(key: Buffer, counter: number, final: boolean, sealed: Buffer): Promise<OpenedChunks>;
}

/** On the worker pool (ZstdPool), one run per worker: what the repository's byte paths use. */
export function workerRunner(): ChunkRunner {
  const pool = ZstdPool.get();
  return {
    parallelism: pool.size,
    seal: (key, counter, final, plain) => pool.seal(key, counter, final, plain),
    open: (key, counter, final, sealed) => pool.open(key, counter, final, sealed),
  };
}

/** On the calling thread: for small whole buffers (a key file, a check value, a WAL segment). */
export const inlineRunner: ChunkRunner = {
  parallelism: 0,
  async seal(key, counter, final, plain) {
    const count = Math.max(1, Math.ceil(plain.length / CHUNK));
    const out: Buffer[] = [];
    for (let i = 0; i < count; i += 1)
      out.push(seal(key, counter + i, final && i === count - 1, plain.subarray(i * CHUNK, (i + 1) * CHUNK)));
    const blocks = BlockPool.get();
    if (blocks.owns(plain)) blocks.giveBack(plain.buffer);
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  },
  async open(key, counter, final, sealed) {
    const count = Math.ceil(sealed.length / SEALED);
    const out: Buffer[] = [];
    for (let i = 0; i < count; i += 1) {
      const plain = open(
        key,
        counter + i,
        final && i === count - 1,
        sealed.subarray(i * SEALED, (i + 1) * SEALED),
      );
      if (!plain) return { failed: i, sealed };
      out.push(plain);
    }
    const blocks = BlockPool.get();
    if (blocks.owns(sealed)) blocks.giveBack(sealed.buffer);
    return { plain: out.length === 1 ? out[0]! : Buffer.concat(out) };
  },
};
