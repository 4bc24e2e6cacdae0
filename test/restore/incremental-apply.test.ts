import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { applyIncrementalTar } from '../../src/restore/incremental-apply.ts';
import { hostileTar } from '../harness/hostile-tar.ts';
import { tempDir } from '../harness/temp-dir.ts';

/**
 * The combiner's block placement, without a server: an `INCREMENTAL.<name>` file as PostgreSQL
 * 17 writes it (header, block numbers, padding to a whole block, the blocks) applied onto the
 * previous backup's file, whatever the chunks the decompressed stream arrives in.
 */

const BLOCK = 8192;
const MAGIC = 0xd3ae1f0d;

let root: string;
before(async () => {
  root = await tempDir('incremental-apply');
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function block(fill: number): Buffer {
  return Buffer.alloc(BLOCK, fill);
}

/** PostgreSQL's incremental file: blocks `numbers` carry `fills`, the file cut to `truncation` blocks first. */
function incrementalFile(numbers: number[], fills: number[], truncation: number): Buffer {
  const header = Buffer.alloc(12 + 4 * numbers.length);
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt32LE(numbers.length, 4);
  header.writeUInt32LE(truncation, 8);
  numbers.forEach((n, i) => header.writeUInt32LE(n, 12 + 4 * i));
  const padding = Buffer.alloc((BLOCK - (header.length % BLOCK)) % BLOCK);
  return Buffer.concat([header, padding, ...fills.map(block)]);
}

async function* inChunks(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

test('changed blocks land at their block numbers, scattered or consecutive, past a cut and beyond the old end, whatever the chunking', async () => {
  // Blocks 0, 2-3 (one run) and 7 change; the file is first cut to 5 blocks, so 5 and 6 read
  // back as zeros (as pg_combinebackup leaves them) and block 7 extends it.
  const archive = hostileTar([
    { name: 'base/', type: 'directory' },
    { name: 'base/5/', type: 'directory' },
    { name: 'base/5/INCREMENTAL.16384', data: incrementalFile([0, 2, 3, 7], [0xa0, 0xa1, 0xa2, 0xa3], 5) },
    { name: 'base/5/PG_VERSION', data: '17\n' },
  ]);
  const expected = Buffer.concat([
    block(0xa0),
    block(2),
    block(0xa1),
    block(0xa2),
    block(5),
    block(0),
    block(0),
    block(0xa3),
  ]);
  for (const size of [1, 511, 4096, BLOCK + 1, 3 * BLOCK - 5, archive.length]) {
    const target = path.join(root, `chunks-${size}`);
    await mkdir(path.join(target, 'base', '5'), { recursive: true });
    // The previous backup's file: six blocks, block i filled with i + 1.
    await writeFile(path.join(target, 'base', '5', '16384'), Buffer.concat([1, 2, 3, 4, 5, 6].map(block)));
    const result = await applyIncrementalTar(Readable.from(inChunks(archive, size)), target, 'test');
    assert.equal(result.blocks, 4, `chunks of ${size}`);
    assert.equal(result.incrementalFiles, 1);
    const file = await readFile(path.join(target, 'base', '5', '16384'));
    assert.equal(file.length, expected.length, `chunks of ${size}`);
    assert.ok(file.equals(expected), `chunks of ${size}: blocks differ`);
    await rm(target, { recursive: true, force: true });
  }
});
