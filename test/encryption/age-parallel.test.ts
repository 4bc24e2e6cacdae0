import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import { isWardenError, WardenError } from '../../src/errors.ts';
import { parseIdentities, X25519Identity, X25519Recipient } from '../../src/pipeline/encryption/age-keys.ts';
import {
  inlineRunner,
  payloadKey,
  RUN_BYTES,
  seal,
  SEALED,
  SEALED_RUN_BYTES,
  workerRunner,
  type ChunkRunner,
} from '../../src/pipeline/encryption/age-chunks.ts';
import { buildHeader } from '../../src/pipeline/encryption/age-header.ts';
import { AgeDecryptStream, AgeEncryptStream, CHUNK } from '../../src/pipeline/encryption/age-stream.ts';
import { ZstdPool } from '../../src/pipeline/zstd-pool.ts';
import { tempDir } from '../harness/temp-dir.ts';

// The worker-pool path of age STREAM: runs of 32 chunks sealed and opened on ZstdPool's workers,
// handed on in order. Sizes straddle chunk and run boundaries.
const alice = X25519Identity.generate();
const digest = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function through(stream: Transform, parts: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(parts), stream, async (source) => {
    for await (const chunk of source as AsyncIterable<Buffer>) out.push(Buffer.from(chunk));
  });
  return Buffer.concat(out);
}

const encrypt = (plain: Buffer, parts = [plain]) => through(new AgeEncryptStream([alice.recipient]), parts);
const decrypt = (file: Buffer, parts = [file], runner?: ChunkRunner) =>
  through(new AgeDecryptStream({ identities: [alice], object: 'obj', ...(runner ? { runner } : {}) }), parts);

function payloadStart(file: Buffer): number {
  const end = file.indexOf('\n---');
  return end + 1 + file.subarray(end + 1).indexOf(0x0a) + 1 + 16;
}

function expectCorrupt(problem: string, chunk?: number) {
  return (error: unknown) => {
    assert.ok(isWardenError(error, 'WARDEN_E_REPO_CORRUPT'), String(error));
    assert.equal(error.details.problem, problem, error.message);
    if (chunk !== undefined) assert.equal(error.details.chunk, chunk, error.message);
    return true;
  };
}

test('round-trips sizes around run and chunk boundaries, on workers and inline alike', async () => {
  for (const size of [0, 1, CHUNK, RUN_BYTES - 1, RUN_BYTES, RUN_BYTES + 1, 2 * RUN_BYTES + CHUNK + 17]) {
    const plain = randomBytes(size);
    const file = await encrypt(plain);
    const chunks = Math.max(1, Math.ceil(size / CHUNK));
    assert.equal(file.length, payloadStart(file) + size + 16 * chunks, `size ${size}`);
    assert.equal(digest(await decrypt(file)), digest(plain), `workers, size ${size}`);
    assert.equal(digest(await decrypt(file, [file], inlineRunner)), digest(plain), `inline, size ${size}`);
  }
});

test('input split at every offset near chunk and run boundaries encrypts and decrypts the same', async () => {
  const plain = randomBytes(RUN_BYTES + 2 * CHUNK + 5);
  const file = await encrypt(plain);
  const start = payloadStart(file);
  const cuts = new Set<number>();
  for (const edge of [start, start + SEALED, start + SEALED_RUN_BYTES, file.length - 1])
    for (let d = -17; d <= 17; d += 1) if (edge + d > 0 && edge + d < file.length) cuts.add(edge + d);
  for (const cut of cuts) {
    const out = await decrypt(file, [file.subarray(0, cut), file.subarray(cut)]);
    assert.equal(digest(out), digest(plain), `cut at ${cut}`);
  }
  for (const cut of [1, CHUNK - 1, CHUNK, CHUNK + 1, RUN_BYTES - 1, RUN_BYTES, RUN_BYTES + 1]) {
    const again = await encrypt(plain, [plain.subarray(0, cut), plain.subarray(cut)]);
    assert.equal(digest(await decrypt(again)), digest(plain), `plaintext cut at ${cut}`);
  }
});

test('a missing final flag, reordered, duplicated or changed chunks in a later run are refused and named', async () => {
  const plain = randomBytes(2 * RUN_BYTES + 1000);
  const file = await encrypt(plain);
  const start = payloadStart(file);
  const chunk = (i: number) => file.subarray(start + i * SEALED, start + (i + 1) * SEALED);
  const head = file.subarray(0, start);
  const last = Math.ceil(plain.length / CHUNK) - 1;
  // cut at the run boundary: its last chunk was sealed as not final
  await assert.rejects(decrypt(file.subarray(0, start + SEALED_RUN_BYTES)), expectCorrupt('truncated', 31));
  // chunks 31 and 32 swapped across the run boundary
  const swapped = Buffer.concat([
    head,
    file.subarray(start, start + 31 * SEALED),
    chunk(32),
    chunk(31),
    file.subarray(start + 33 * SEALED),
  ]);
  await assert.rejects(decrypt(swapped), expectCorrupt('chunks-reordered', 31));
  // chunk 40 repeated
  const duplicated = Buffer.concat([
    file.subarray(0, start + 41 * SEALED),
    chunk(40),
    file.subarray(start + 41 * SEALED),
  ]);
  await assert.rejects(decrypt(duplicated), expectCorrupt('chunks-reordered', 41));
  const changed = Buffer.from(file);
  changed[start + 45 * SEALED + 100]! ^= 1;
  await assert.rejects(decrypt(changed), expectCorrupt('chunk-authentication-failed', 45));
  // the final chunk dropped: what remains ends in a chunk not marked final
  await assert.rejects(
    decrypt(file.subarray(0, start + last * SEALED)),
    expectCorrupt('truncated', last - 1),
  );
  // an empty final chunk after full ones (age allows it only for an empty file)
  const fileKey = randomBytes(16);
  const nonce = randomBytes(16);
  const key = payloadKey(fileKey, nonce);
  const chunks = Array.from({ length: 33 }, (_, i) => seal(key, i, false, randomBytes(CHUNK)));
  const emptyLast = Buffer.concat([
    await buildHeader([alice.recipient], fileKey),
    nonce,
    ...chunks,
    seal(key, 33, true, Buffer.alloc(0)),
  ]);
  await assert.rejects(decrypt(emptyLast), expectCorrupt('empty-last-chunk', 33));
});

test('a slow consumer holds the producer back: memory stays at the runs in flight', async () => {
  const plain = Buffer.alloc(48 * 1024 * 1024, 'ledger ');
  const file = await encrypt(plain);
  for (const stream of [
    new AgeDecryptStream({ identities: [alice] }),
    new AgeEncryptStream([alice.recipient]),
  ]) {
    const input = stream instanceof AgeDecryptStream ? file : plain;
    let maxHeld = 0;
    const out = createHash('sha256');
    await pipeline(Readable.from([input]), stream, async (source) => {
      for await (const part of source as AsyncIterable<Buffer>) {
        maxHeld = Math.max(maxHeld, stream.readableLength);
        out.update(part);
        await new Promise((resolve) => setTimeout(resolve, 2)); // slower than the workers
      }
    });
    if (stream instanceof AgeDecryptStream) assert.equal(out.digest('hex'), digest(plain));
    // readableObjectMode: readableLength counts runs; 48 MiB arrived in one write
    assert.ok(maxHeld <= 2, `at most two runs wait unread (saw ${maxHeld})`);
  }
});

test('a worker that dies fails its jobs with a precise error, and the pool goes on with a new one', async () => {
  const pool = ZstdPool.get();
  const key = randomBytes(32);
  // A 64 MiB run takes the worker far longer than terminating it does.
  const pending = pool.seal(key, 0, true, Buffer.alloc(64 * 1024 * 1024, 1));
  const workers = (pool as unknown as { workers: Worker[] }).workers;
  const busy =
    workers[(workers.length + (pool as unknown as { nextWorker: number }).nextWorker - 1) % workers.length]!;
  await busy.terminate();
  await assert.rejects(pending, (error: unknown) => {
    assert.ok(isWardenError(error, 'WARDEN_E_INTERNAL'), String(error));
    assert.equal(error.details.problem, 'worker-failed');
    assert.equal(error.details.op, 'seal');
    return true;
  });
  assert.ok(!workers.includes(busy), 'the dead worker was replaced');
  const plain = randomBytes(3 * RUN_BYTES);
  assert.equal(digest(await decrypt(await encrypt(plain))), digest(plain));
});

test('a failed run ends the stream with its error after the runs before it, nothing after', async () => {
  const failure = new WardenError('WARDEN_E_INTERNAL', 'injected worker failure');
  const failing = (after: number): ChunkRunner => {
    const real = workerRunner();
    let runs = 0;
    return {
      parallelism: real.parallelism,
      seal: (...args) => (++runs > after ? Promise.reject(failure) : real.seal(...args)),
      open: (...args) => (++runs > after ? Promise.reject(failure) : real.open(...args)),
    };
  };
  const plain = randomBytes(4 * RUN_BYTES);
  const file = await encrypt(plain);
  const emitted: Buffer[] = [];
  const stream = new AgeDecryptStream({ identities: [alice], runner: failing(2) });
  await assert.rejects(
    pipeline(Readable.from([file]), stream, async (source) => {
      for await (const part of source as AsyncIterable<Buffer>) emitted.push(Buffer.from(part));
    }),
    (error) => error === failure,
  );
  // What arrived before the error is the plaintext's beginning, never anything of a later run.
  const got = Buffer.concat(emitted);
  assert.ok(got.length <= 2 * RUN_BYTES, `${got.length} bytes emitted`);
  assert.ok(got.equals(plain.subarray(0, got.length)));
});

test('the age tool decrypts what the workers encrypt, and the workers decrypt what age encrypts', async () => {
  const dir = await tempDir('age-cli');
  const file = (name: string) => path.join(dir, name);
  execFileSync('age-keygen', ['-o', file('key.txt')], { stdio: 'ignore' });
  const [identity] = parseIdentities(await readFile(file('key.txt'), 'utf8'));
  const plain = randomBytes(2 * RUN_BYTES + CHUNK + 99);
  const ours = await through(new AgeEncryptStream([X25519Recipient.parse(identity!.label)]), [plain]);
  await writeFile(file('ours.age'), ours);
  const out = execFileSync('age', ['-d', '-i', file('key.txt'), file('ours.age')], { maxBuffer: 1 << 26 });
  assert.equal(digest(out), digest(plain));
  await writeFile(file('plain.bin'), plain);
  execFileSync('age', ['-r', identity!.label, '-o', file('theirs.age'), file('plain.bin')]);
  const theirs = await readFile(file('theirs.age'));
  const decrypted = await through(new AgeDecryptStream({ identities: [identity!] }), [theirs]);
  assert.equal(digest(decrypted), digest(plain));
});
