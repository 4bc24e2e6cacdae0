import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { compress, CompressStream } from 'zstd-napi';
import { ParallelZstdCompressor } from '../../src/pipeline/zstd-pool.ts';
import { ParallelZstdDecompressor } from '../../src/pipeline/zstd-decompressor.ts';
import { ZstdFrameReader } from '../../src/pipeline/zstd-frames.ts';

const MiB = 1024 * 1024;
const digest = (data: Buffer) => createHash('sha256').update(data).digest('hex');

function sample(size: number): Buffer {
  const data = Buffer.alloc(size, 'ledger ');
  randomBytes(Math.floor(size / 3)).copy(data, Math.floor(size / 3));
  return data;
}

/** Warden's own format: independent frames of 2 MiB blocks, each with its size and checksum. */
async function wardenFrames(data: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from([data]), new ParallelZstdCompressor(1), async (source) => {
    for await (const chunk of source as AsyncIterable<Buffer>) out.push(chunk);
  });
  return Buffer.concat(out);
}

async function decompressAll(
  input: Buffer,
  chunkSize: number,
  check?: (d: ParallelZstdDecompressor) => void,
) {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < input.length; offset += chunkSize)
    chunks.push(input.subarray(offset, offset + chunkSize));
  const decompressor = new ParallelZstdDecompressor();
  const out: Buffer[] = [];
  await pipeline(Readable.from(chunks), decompressor, async (source) => {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      check?.(decompressor);
      out.push(Buffer.from(chunk));
      await new Promise((resolve) => setImmediate(resolve)); // a consumer slower than the workers
    }
  });
  return Buffer.concat(out);
}

test('frames split anywhere across input chunks decompress in order', async () => {
  const data = sample(11 * MiB + 333);
  const stored = await wardenFrames(data);
  for (const chunkSize of [1000, 64 * 1024, 3 * MiB + 1])
    assert.equal(digest(await decompressAll(stored, chunkSize)), digest(data), `chunks of ${chunkSize}`);
});

test('one input chunk holding many frames does not run ahead of a slow consumer', async () => {
  const data = Buffer.alloc(48 * MiB, 'balanced '); // ~24 frames that compress to a few KiB each
  const stored = await wardenFrames(data);
  let maxUnread = 0;
  const out = await decompressAll(stored, stored.length, (d) => {
    maxUnread = Math.max(maxUnread, d.readableLength);
  });
  assert.equal(digest(out), digest(data));
  assert.ok(maxUnread <= 2, `at most two decompressed blocks wait unread (saw ${maxUnread})`);
});

test('an unsized or oversized frame (server compression, other tools) is decompressed as a stream', async () => {
  const data = sample(20 * MiB + 5);
  const streamed: Buffer[] = [];
  // CompressStream writes one frame without a content size, like the server's compression.
  await pipeline(Readable.from([data.subarray(0, 5 * MiB)]), new CompressStream(), async (source) => {
    for await (const chunk of source as AsyncIterable<Buffer>) streamed.push(chunk);
  });
  const big = compress(data.subarray(5 * MiB)); // one frame of 15 MiB + 5, with its size
  for (const [label, stored, expected] of [
    ['unsized', Buffer.concat(streamed), data.subarray(0, 5 * MiB)],
    [
      'Warden frames, then an unsized frame',
      Buffer.concat([compress(Buffer.from('abc')), ...streamed]),
      Buffer.concat([Buffer.from('abc'), data.subarray(0, 5 * MiB)]),
    ],
    ['oversized', compress(data), data],
    ['sized frames', Buffer.concat([compress(data.subarray(0, 5 * MiB)), big]), data],
  ] as const) {
    assert.equal(digest(await decompressAll(stored, 100_000)), digest(expected), label);
  }
});

test('skippable frames are passed over', async () => {
  const skippable = Buffer.alloc(8 + 10);
  skippable.writeUInt32LE(0x184d2a53, 0);
  skippable.writeUInt32LE(10, 4);
  const stored = Buffer.concat([
    skippable,
    compress(Buffer.from('first')),
    skippable,
    compress(Buffer.from('second')),
  ]);
  assert.equal((await decompressAll(stored, 7)).toString(), 'firstsecond');
});

test('a truncated stream, a damaged frame and bytes that are not zstd fail', async () => {
  const stored = await wardenFrames(sample(5 * MiB));
  await assert.rejects(decompressAll(stored.subarray(0, stored.length - 3), 64 * 1024), {
    code: 'WARDEN_E_REPO_CORRUPT',
    message: /ends in the middle of a frame/,
  });
  const damaged = Buffer.from(stored);
  damaged[Math.floor(damaged.length / 2)]! ^= 0x55;
  await assert.rejects(decompressAll(damaged, 64 * 1024));
  await assert.rejects(decompressAll(Buffer.from('PGDMP not zstd at all'), 64), {
    code: 'WARDEN_E_REPO_CORRUPT',
    message: /bad frame magic/,
  });
});

test('the frame reader reads content sizes of every header width', () => {
  for (const size of [0, 1, 255, 256, 300, 65_791, 65_792, 2 * MiB, 5 * MiB]) {
    const frame = compress(Buffer.alloc(size, 'x'));
    const reader = new ZstdFrameReader(16 * MiB);
    const frames = [...reader.push(frame.subarray(0, 3)), ...reader.push(frame.subarray(3))];
    assert.equal(frames.length, 1, `size ${size}`);
    assert.equal(frames[0]!.contentSize, size);
    assert.equal(frames[0]!.bytes.length, frame.length);
  }
});
