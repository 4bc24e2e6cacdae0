import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { X25519Identity } from '../../src/pipeline/encryption/age-keys.ts';
import { openPartial, PartialWriter, scanPartial } from '../../src/wal/partial-format.ts';
import { isWardenError } from '../../src/errors.ts';
import { SigningKey } from '../../src/pipeline/signing/signing-keys.ts';

const SEGMENT = 64 * 1024;
const NAME = '000000010000000000000003';
const OBJECT = `wal/00000001/${NAME}.partial`;
const alice = X25519Identity.generate();
const bob = X25519Identity.generate();

/** A partial written in three flushes, and the WAL bytes it holds. */
async function written(sealed: boolean): Promise<{ data: Buffer; wal: Buffer; frameEnds: number[] }> {
  const writer = await PartialWriter.create(NAME, sealed ? [alice.recipient] : undefined);
  const pieces = [randomBytes(100), randomBytes(3000), randomBytes(17)];
  const parts = [writer.preamble];
  const frameEnds: number[] = [];
  let size = writer.preamble.length;
  for (const piece of pieces) {
    const frame = writer.frame(piece);
    parts.push(frame);
    size += frame.length;
    frameEnds.push(size);
  }
  return { data: Buffer.concat(parts), wal: Buffer.concat(pieces), frameEnds };
}

const open = (data: Buffer, identities = [alice]) =>
  openPartial(data, { object: OBJECT, segment: NAME, segmentSize: SEGMENT, identities });

for (const sealed of [true, false]) {
  const kind = sealed ? 'sealed' : 'checksummed';

  test(`a ${kind} partial reads back the bytes of every flush`, async () => {
    const { data, wal } = await written(sealed);
    const opened = await open(data);
    assert.equal(opened.format, kind);
    assert.deepEqual(opened.wal, wal);
    assert.equal(scanPartial(data, OBJECT, SEGMENT).validBytes, wal.length);
    if (sealed) assert.ok(!data.includes(wal.subarray(0, 32)), 'no WAL bytes in the clear');
  });

  test(`a ${kind} partial cut at any offset reads as its complete frames (a crash mid-write)`, async () => {
    const { data, wal, frameEnds } = await written(sealed);
    for (let cut = 0; cut <= data.length; cut += 1) {
      const complete = frameEnds.filter((end) => end <= cut).length;
      const expected = [100, 3100, 3117][complete - 1] ?? 0;
      const opened = await open(data.subarray(0, cut));
      assert.equal(opened.validBytes, expected, `cut at ${cut}`);
      assert.deepEqual(opened.wal, wal.subarray(0, expected));
    }
  });

  test(`a flipped byte anywhere in a ${kind} partial is detected`, async () => {
    const { data } = await written(sealed);
    for (let at = 0; at < data.length; at += 1) {
      const damaged = Buffer.from(data);
      damaged[at]! ^= 0x01;
      // A changed stanza type leaves no stanza for the identity: a key mismatch, still refused.
      await assert.rejects(
        open(damaged),
        (error) =>
          isWardenError(error, 'WARDEN_E_REPO_CORRUPT') || isWardenError(error, 'WARDEN_E_KEY_MISMATCH'),
        `byte ${at}`,
      );
    }
  });

  test(`frames of a ${kind} partial moved, dropped or repeated are detected`, async () => {
    const { data, frameEnds } = await written(sealed);
    const preamble = data.subarray(0, firstFrameAt(data, frameEnds));
    const f = [
      data.subarray(firstFrameAt(data, frameEnds), frameEnds[0]),
      data.subarray(frameEnds[0], frameEnds[1]),
      data.subarray(frameEnds[1], frameEnds[2]),
    ];
    for (const [what, frames] of [
      ['dropped', [f[0]!, f[2]!]],
      ['swapped', [f[1]!, f[0]!, f[2]!]],
      ['repeated', [f[0]!, f[0]!, f[1]!]],
    ] as const) {
      await assert.rejects(
        open(Buffer.concat([preamble, ...frames])),
        (error) =>
          isWardenError(error, 'WARDEN_E_REPO_CORRUPT') &&
          error.details.problem === 'partial-frames-out-of-order',
        what,
      );
    }
  });
}

function firstFrameAt(data: Buffer, frameEnds: number[]): number {
  // The first frame holds 100 bytes: header (20) + 100 + tag (16) or digest (32).
  const sealed = data.subarray(0, 40).toString('latin1').includes('sealed');
  return frameEnds[0]! - (20 + 100 + (sealed ? 16 : 32));
}

test('a sealed partial opens only with an identity of its recipients', async () => {
  const { data } = await written(true);
  await assert.rejects(open(data, []), (error) => isWardenError(error, 'WARDEN_E_KEY_MISSING'));
  await assert.rejects(open(data, [bob]), (error) => isWardenError(error, 'WARDEN_E_KEY_MISMATCH'));
});

test('a sealed partial under another segment name fails authentication', async () => {
  const { data } = await written(true);
  await assert.rejects(
    openPartial(data, {
      object: OBJECT,
      segment: '000000010000000000000004',
      segmentSize: SEGMENT,
      identities: [alice],
    }),
    (error) =>
      isWardenError(error, 'WARDEN_E_REPO_CORRUPT') &&
      error.details.problem === 'partial-frame-authentication-failed',
  );
});

test('an unframed partial (raw WAL, earlier versions) reads as raw; other bytes are refused', async () => {
  const raw = Buffer.alloc(8192);
  raw.writeUInt16LE(0xd116, 0);
  raw.writeUInt16LE(0x0002, 2);
  assert.equal((await open(raw)).format, 'raw');
  await assert.rejects(open(randomBytes(4096).fill(0x41, 0, 2)), (error) =>
    isWardenError(error, 'WARDEN_E_REPO_CORRUPT'),
  );
});

test('with checkHeader, a changed header of a sealed partial without frames is detected too', async () => {
  const writer = await PartialWriter.create(NAME, [alice.recipient]);
  const options = {
    object: OBJECT,
    segment: NAME,
    segmentSize: SEGMENT,
    identities: [alice],
    checkHeader: true,
  };
  assert.equal((await openPartial(writer.preamble, options)).validBytes, 0);
  for (let at = 0; at < writer.preamble.length; at += 1) {
    const damaged = Buffer.from(writer.preamble);
    damaged[at]! ^= 0x01;
    await assert.rejects(
      openPartial(damaged, options),
      (error) =>
        isWardenError(error, 'WARDEN_E_REPO_CORRUPT') || isWardenError(error, 'WARDEN_E_KEY_MISMATCH'),
      `byte ${at}`,
    );
  }
});

const SYSTEM_ID = '7311111111111111111';
const signer = SigningKey.generate();
const trusted = { policy: { keys: new Map([[signer.id, signer.publicKey]]) }, systemId: SYSTEM_ID };

async function signedPartial(
  sealed: boolean,
  key = signer,
): Promise<{ data: Buffer; wal: Buffer; ends: number[] }> {
  const writer = await PartialWriter.create(NAME, sealed ? [alice.recipient] : undefined, {
    key,
    systemId: SYSTEM_ID,
  });
  const pieces = [randomBytes(100), randomBytes(3000), randomBytes(17)];
  const parts = [writer.preamble];
  const ends: number[] = [];
  let size = writer.preamble.length;
  for (const piece of pieces) {
    parts.push(writer.frame(piece));
    size += parts.at(-1)!.length;
    ends.push(size);
  }
  return { data: Buffer.concat(parts), wal: Buffer.concat(pieces), ends };
}

const openTrusted = (data: Buffer, options: { segment?: string; trust?: typeof trusted } = {}) =>
  openPartial(data, {
    object: OBJECT,
    segment: options.segment ?? NAME,
    segmentSize: SEGMENT,
    identities: [alice],
    trust: options.trust ?? trusted,
  });

const signatureCodes = ['WARDEN_E_SIGNATURE_INVALID', 'WARDEN_E_SIGNATURE_UNTRUSTED', 'WARDEN_E_UNSIGNED'];

for (const sealed of [true, false]) {
  const kind = sealed ? 'sealed' : 'checksummed';

  test(`a signed ${kind} partial names its key, reads back with a trust set, and at every cut`, async () => {
    const { data, wal, ends } = await signedPartial(sealed);
    assert.ok(data.toString('latin1').startsWith(`warden-partial-wal/v1 ${kind} signed ${signer.id}\n`));
    assert.equal(scanPartial(data, OBJECT, SEGMENT).signer, signer.id);
    assert.deepEqual((await openTrusted(data)).wal, wal);
    // Readers without a trust set read it as before.
    assert.deepEqual((await open(data)).wal, wal);
    for (let cut = 0; cut <= data.length; cut += 1) {
      const complete = ends.filter((end) => end <= cut).length;
      const expected = [100, 3100, 3117][complete - 1] ?? 0;
      assert.equal((await openTrusted(data.subarray(0, cut))).validBytes, expected, `cut at ${cut}`);
    }
  });

  test(`a flipped byte anywhere in a signed ${kind} partial is refused by a reader with a trust set`, async () => {
    const { data } = await signedPartial(sealed);
    for (let at = 0; at < data.length; at += 1) {
      const damaged = Buffer.from(data);
      damaged[at]! ^= 0x01;
      await assert.rejects(
        openTrusted(damaged),
        (error) =>
          isWardenError(error) &&
          ['WARDEN_E_REPO_CORRUPT', 'WARDEN_E_KEY_MISMATCH', ...signatureCodes].includes(error.code),
        `byte ${at}`,
      );
    }
  });

  test(`a ${kind} partial signed by another key, unsigned, or under another segment name is refused with a trust set`, async () => {
    const other = SigningKey.generate();
    const byOther = await signedPartial(sealed, other);
    await assert.rejects(
      openTrusted(byOther.data),
      (error) =>
        isWardenError(error, 'WARDEN_E_SIGNATURE_UNTRUSTED') &&
        error.details.object === OBJECT &&
        error.details.key === other.id,
    );
    // The other key's frames under a format line naming the trusted key.
    const claimed = Buffer.from(byOther.data.toString('latin1').replace(other.id, signer.id), 'latin1');
    if (sealed) {
      const lineEnd = claimed.indexOf(0x0a) + 1;
      createHash('sha256')
        .update(claimed.subarray(0, lineEnd + 4))
        .digest()
        .copy(claimed, lineEnd + 4, 0, 4);
    }
    await assert.rejects(
      openTrusted(claimed),
      (error) => isWardenError(error, 'WARDEN_E_SIGNATURE_INVALID') && error.details.frame === 0,
    );
    const { data } = await written(sealed);
    await assert.rejects(openTrusted(data), (error) => isWardenError(error, 'WARDEN_E_UNSIGNED'));
    const warned: string[] = [];
    const lenient = {
      ...trusted,
      policy: { ...trusted.policy, allowUnsigned: true, onUnsigned: (o: string) => warned.push(o) },
    };
    assert.ok((await openTrusted(data, { trust: lenient })).validBytes > 0);
    assert.deepEqual(warned, [OBJECT]);
    await assert.rejects(openTrusted(claimed, { trust: lenient }), (error) =>
      isWardenError(error, 'WARDEN_E_SIGNATURE_INVALID'),
    );
    const signed = await signedPartial(sealed);
    await assert.rejects(
      openTrusted(signed.data, { trust: { ...trusted, systemId: '7322222222222222222' } }),
      (error) => isWardenError(error, 'WARDEN_E_SIGNATURE_INVALID'),
    );
    await assert.rejects(openTrusted(signed.data, { segment: '000000010000000000000004' }), (error) =>
      isWardenError(error, 'WARDEN_E_SIGNATURE_INVALID'),
    );
  });
}

test('raw WAL (an unframed partial) is unsigned to a reader with a trust set', async () => {
  const raw = Buffer.alloc(8192);
  raw.writeUInt16LE(0xd116, 0);
  raw.writeUInt16LE(0x0002, 2);
  await assert.rejects(openTrusted(raw), (error) => isWardenError(error, 'WARDEN_E_UNSIGNED'));
});
