import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { createDecompressor } from '../../src/pipeline/compression.ts';
import { ParallelZstdCompressor } from '../../src/pipeline/zstd-pool.ts';

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

test('parallel zstd frames decompress to the input for sizes around the 4 MiB block, reusing blocks', async () => {
  // Several streams in sequence: later ones get blocks the workers handed back.
  for (const size of [0, 1, 4095, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1, 13 * MiB + 7, 100_000, 9 * MiB]) {
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
