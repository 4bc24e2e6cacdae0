import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { compress, decompress } from 'zstd-napi';
import { BLOCK_BYTES, BlockPool } from '../../src/pipeline/block-pool.ts';
import { createDecompressor } from '../../src/pipeline/compression.ts';
import { ParallelZstdCompressor, ZstdPool } from '../../src/pipeline/zstd-pool.ts';

const MiB = 1024 * 1024;

function sample(size: number): Buffer {
  // half random, half repetitive: exercises both compressible and incompressible frames
  const data = Buffer.alloc(size, 'warden');
  randomBytes(Math.floor(size / 2)).copy(data);
  return data;
}

async function roundTrip(data: Buffer, chunkSize: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += chunkSize)
    chunks.push(data.subarray(offset, offset + chunkSize));
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    new ParallelZstdCompressor(3),
    createDecompressor('zstd'),
    async (source) => {
      for await (const chunk of source as AsyncIterable<Buffer>) out.push(chunk);
    },
  );
  return Buffer.concat(out);
}

const digest = (data: Buffer) => createHash('sha256').update(data).digest('hex');

test('parallel zstd frames decompress to the input for sizes around the block size, reusing blocks', async () => {
  // Several streams in sequence: later ones get blocks the workers handed back.
  const B = BLOCK_BYTES;
  for (const size of [0, 1, 4095, B - 1, B, B + 1, 3 * B + 7, 13 * MiB + 7, 100_000, 9 * MiB]) {
    for (const chunkSize of [32 * 1024, 1 * MiB + 3]) {
      const data = sample(size);
      assert.equal(
        digest(await roundTrip(data, chunkSize)),
        digest(data),
        `size ${size}, chunks of ${chunkSize}`,
      );
    }
  }
});

test('BlockPool blocks written to the compressor become frames without a copy and come back for reuse', async () => {
  const blocks = BlockPool.get();
  const data = sample(19 * MiB + 5);
  // What the replication client does: a type byte in front, payload after, mixed block sizes.
  const chunks: Buffer[] = [];
  const sizes = [
    BLOCK_BYTES - 1,
    BLOCK_BYTES - 1,
    (BLOCK_BYTES * 3) / 4,
    100,
    BLOCK_BYTES - 1,
    BLOCK_BYTES - 1,
  ];
  let offset = 0;
  for (const size of sizes) {
    const n = Math.min(size, data.length - offset);
    const block = blocks.take();
    block[0] = 0x64;
    data.copy(block, 1, offset, offset + n);
    chunks.push(block.subarray(1, 1 + n));
    offset += n;
  }
  chunks.push(data.subarray(offset)); // an ordinary buffer at the end
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    new ParallelZstdCompressor(1),
    createDecompressor('zstd'),
    async (source) => {
      // What the tar extractor does: decompressed blocks go back to the pool once used.
      for await (const chunk of source as AsyncIterable<Buffer>) {
        out.push(Buffer.from(chunk));
        if (blocks.owns(chunk)) blocks.giveBack(chunk.buffer);
      }
    },
  );
  assert.equal(digest(Buffer.concat(out)), digest(data));
  // Handed-over blocks are detached from this thread; the workers returned their memory.
  assert.equal(chunks[0]!.length, 0);
  assert.ok(blocks.freeCount() > 0);
});

test('a 16 MiB input (a WAL segment) compresses into one frame through the worker scratch buffer', async () => {
  const data = randomBytes(16 * MiB); // incompressible: the frame is larger than one block
  const frame = await ZstdPool.get().compress(Buffer.from(data), 3);
  assert.ok(frame.length > BLOCK_BYTES);
  assert.equal(digest(decompress(frame)), digest(data));
});

test('archives written by earlier versions (level 3, 4 MiB frames) still decompress', async () => {
  const data = sample(9 * MiB + 11);
  const frames: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += 4 * MiB)
    frames.push(compress(data.subarray(offset, offset + 4 * MiB), { compressionLevel: 3 }));
  const out: Buffer[] = [];
  await pipeline(Readable.from(frames), createDecompressor('zstd'), async (source) => {
    for await (const chunk of source as AsyncIterable<Buffer>) out.push(chunk);
  });
  assert.equal(digest(Buffer.concat(out)), digest(data));
});

// A block is handed to a worker by transfer: its memory leaves this thread (detached, length 0)
// until the worker sends it back, so not even a mistaken early give-back can reissue it to the
// replication client while the worker still compresses it. A copy instead of a transfer (what a
// postMessage without the transfer list does, ~1 ms per 2 MiB block) fails here too.
test('a block in flight to a worker is detached here and never reissued before the worker returns it', async () => {
  const blocks = BlockPool.get();
  const pool = ZstdPool.get();
  const pending: Array<Promise<Buffer>> = [];
  const sent: Buffer[] = [];
  const memories: ArrayBuffer[] = [];
  for (let i = 0; i < pool.size + 2; i += 1) {
    const block = blocks.take();
    const content = sample(BLOCK_BYTES);
    content.copy(block);
    sent.push(content);
    memories.push(block.buffer as ArrayBuffer);
    pending.push(pool.compress(block, 1, true));
    assert.equal(block.buffer.byteLength, 0, 'transferred, not copied');
    blocks.giveBack(block.buffer); // a mistaken early give-back: ignored
  }
  // Blocks taken meanwhile (what the client fills next) are other memory, and overwriting them
  // changes no frame.
  for (let i = 0; i < 4; i += 1) {
    const other = blocks.take();
    assert.ok(other.length === BLOCK_BYTES && !memories.includes(other.buffer as ArrayBuffer));
    other.fill(0xee);
    blocks.giveBack(other.buffer);
  }
  const frames = await Promise.all(pending);
  frames.forEach((frame, i) => assert.equal(digest(decompress(frame)), digest(sent[i]!), `block ${i}`));
  for (const frame of frames) if (blocks.owns(frame)) blocks.giveBack(frame.buffer);
});

// The replication client pushes its block early when another message comes between archive data
// (a progress report, about once a second): a short pooled chunk. The full blocks after it must
// still be compressed as they are: copied into the block the short chunk started, they would
// shift every later block by the same offset, and the rest of the archive would be copied twice.
test('full blocks after a short one are still compressed in place, each its own frame', async () => {
  const blocks = BlockPool.get();
  const sizes = [BLOCK_BYTES - 1, 100, BLOCK_BYTES - 1, BLOCK_BYTES - 1, 5000];
  const data = sample(sizes.reduce((a, b) => a + b, 0));
  const frames: Buffer[] = [];
  const compressor = new ParallelZstdCompressor(1);
  const collected = (async () => {
    for await (const frame of compressor as AsyncIterable<Buffer>) frames.push(Buffer.from(frame));
  })();
  let offset = 0;
  for (const size of sizes) {
    const block = blocks.take();
    data.copy(block, 0, offset, offset + size);
    offset += size;
    const chunk = block.subarray(0, size);
    if (!compressor.write(chunk)) await new Promise((resolve) => compressor.once('drain', resolve));
  }
  compressor.end();
  await collected;
  assert.deepEqual(
    frames.map((frame) => decompress(frame).length),
    sizes,
    'one frame per pooled chunk: none was copied into another block',
  );
  assert.equal(digest(Buffer.concat(frames.map((frame) => decompress(frame)))), digest(data));
});
