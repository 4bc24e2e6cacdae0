import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { isWardenError } from '../../src/errors.ts';
import { bech32Decode, bech32Encode } from '../../src/pipeline/encryption/bech32.ts';
import { ScryptIdentity, ScryptRecipient, X25519Identity } from '../../src/pipeline/encryption/age-keys.ts';
import {
  AgeDecryptStream,
  CHUNK,
  decryptBuffer,
  encryptBuffer,
  probeHeader,
} from '../../src/pipeline/encryption/age-stream.ts';

const alice = X25519Identity.generate();
const bob = X25519Identity.generate();

function expectCorrupt(problem: string) {
  return (error: unknown) => {
    assert.ok(isWardenError(error, 'WARDEN_E_REPO_CORRUPT'), String(error));
    assert.equal(error.details.problem, problem, error.message);
    assert.equal(error.details.object, 'obj');
    return true;
  };
}

function headerLength(file: Buffer): number {
  return file.indexOf('\n---') + 1 + file.subarray(file.indexOf('\n---') + 1).indexOf(0x0a) + 1;
}

test('bech32 round-trips recipients and identities, rejects a changed character', () => {
  const encoded = bech32Encode('age', alice.recipient.publicKey);
  assert.equal(encoded, alice.label);
  assert.ok(alice.encode().startsWith('AGE-SECRET-KEY-1'));
  assert.equal(X25519Identity.parse(alice.encode()).label, alice.label);
  const flipped = `${encoded.slice(0, 10)}${encoded[10] === 'q' ? 'p' : 'q'}${encoded.slice(11)}`;
  assert.throws(() => bech32Decode(flipped));
});

test('round-trips every size around chunk boundaries, to several recipients', async () => {
  for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17]) {
    const plain = randomBytes(size);
    const file = await encryptBuffer(plain, [alice.recipient, bob.recipient]);
    assert.equal(file.length, headerLength(file) + 16 + size + 16 * Math.max(1, Math.ceil(size / CHUNK)));
    assert.ok((await decryptBuffer(file, { identities: [bob] })).equals(plain), `size ${size}`);
  }
});

test('decrypts input split at every offset of the header and across chunks', async () => {
  const plain = randomBytes(CHUNK + 100);
  const file = await encryptBuffer(plain, [alice.recipient]);
  for (let cut = 1; cut < file.length; cut += cut < 400 ? 1 : 4099) {
    const stream = new AgeDecryptStream({ identities: [alice] });
    const parts: Buffer[] = [];
    stream.on('data', (part: Buffer) => parts.push(part));
    const done = new Promise((resolve, reject) => stream.on('end', resolve).on('error', reject));
    stream.write(file.subarray(0, cut));
    stream.end(file.subarray(cut));
    await done;
    assert.ok(Buffer.concat(parts).equals(plain), `cut at ${cut}`);
  }
});

test('passphrase (scrypt) mode round-trips; a wrong passphrase is a key mismatch', async () => {
  const plain = randomBytes(1000);
  const file = await encryptBuffer(plain, [new ScryptRecipient('correct horse', 10)]);
  assert.match(file.toString('latin1', 0, 60), /-> scrypt \S+ 10\n/);
  assert.ok((await decryptBuffer(file, { identities: [new ScryptIdentity('correct horse')] })).equals(plain));
  await assert.rejects(decryptBuffer(file, { identities: [new ScryptIdentity('wrong')] }), (error) =>
    isWardenError(error, 'WARDEN_E_KEY_MISMATCH'),
  );
});

test('wrong identity is WARDEN_E_KEY_MISMATCH, none is WARDEN_E_KEY_MISSING, found from the header alone', async () => {
  const file = await encryptBuffer(randomBytes(3 * CHUNK), [alice.recipient]);
  const header = file.subarray(0, headerLength(file));
  await assert.rejects(probeHeader(Readable.from([header]), { identities: [bob], object: 'obj' }), (error) =>
    isWardenError(error, 'WARDEN_E_KEY_MISMATCH'),
  );
  await assert.rejects(decryptBuffer(file, { identities: [] }), (error) =>
    isWardenError(error, 'WARDEN_E_KEY_MISSING'),
  );
  await probeHeader(Readable.from([header]), { identities: [bob, alice] });
});

test('a flipped bit anywhere is detected and named', async () => {
  const plain = randomBytes(2 * CHUNK + 500);
  const file = await encryptBuffer(plain, [alice.recipient]);
  const start = headerLength(file);
  const problems = new Set<string>();
  for (const position of [
    20,
    start - 10,
    start + 3,
    start + 16 + 5,
    start + 16 + CHUNK + 40,
    file.length - 1,
  ]) {
    const damaged = Buffer.from(file);
    damaged[position]! ^= 0x04;
    await assert.rejects(decryptBuffer(damaged, { identities: [alice], object: 'obj' }), (error: unknown) => {
      assert.ok(isWardenError(error), String(error));
      problems.add(String(error.details.problem ?? error.code));
      // a flipped bit inside the X25519 stanza makes it undecryptable for this identity
      assert.ok(
        error.code === 'WARDEN_E_REPO_CORRUPT' || error.code === 'WARDEN_E_KEY_MISMATCH',
        error.message,
      );
      return true;
    });
  }
  assert.ok(problems.has('chunk-authentication-failed'), [...problems].join());
  assert.ok(problems.has('header-mac-mismatch') || problems.has('bad-header'), [...problems].join());
});

test('truncation, reordered chunks and trailing bytes are detected and named', async () => {
  const plain = randomBytes(3 * CHUNK + 1000);
  const file = await encryptBuffer(plain, [alice.recipient]);
  const payload = headerLength(file) + 16;
  const sealed = CHUNK + 16;
  const chunk = (i: number) => file.subarray(payload + i * sealed, payload + (i + 1) * sealed);
  const options = { identities: [alice], object: 'obj' };
  // cut at a chunk boundary: the remaining last chunk is not marked last
  await assert.rejects(
    decryptBuffer(file.subarray(0, payload + 2 * sealed), options),
    expectCorrupt('truncated'),
  );
  // cut inside the final chunk
  await assert.rejects(
    decryptBuffer(file.subarray(0, file.length - 7), options),
    expectCorrupt('chunk-authentication-failed'),
  );
  // cut inside the header
  await assert.rejects(decryptBuffer(file.subarray(0, 30), options), expectCorrupt('truncated'));
  const swapped = Buffer.concat([
    file.subarray(0, payload),
    chunk(1),
    chunk(0),
    file.subarray(payload + 2 * sealed),
  ]);
  await assert.rejects(decryptBuffer(swapped, options), expectCorrupt('chunks-reordered'));
  // Bytes after a full-size final chunk are named; after a short one they fail authentication.
  const whole = await encryptBuffer(randomBytes(2 * CHUNK), [alice.recipient]);
  await assert.rejects(
    decryptBuffer(Buffer.concat([whole, randomBytes(100)]), options),
    expectCorrupt('trailing-data'),
  );
  await assert.rejects(
    decryptBuffer(Buffer.concat([file, randomBytes(100)]), options),
    expectCorrupt('chunk-authentication-failed'),
  );
  const dropped = Buffer.concat([
    file.subarray(0, payload),
    chunk(0),
    chunk(2),
    file.subarray(payload + 3 * sealed),
  ]);
  await assert.rejects(decryptBuffer(dropped, options), expectCorrupt('chunks-reordered'));
});
