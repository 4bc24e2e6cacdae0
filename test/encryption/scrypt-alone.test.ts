import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { Decrypter } from 'age-encryption';
import { isWardenError } from '../../src/errors.ts';
import {
  ScryptIdentity,
  ScryptRecipient,
  X25519Identity,
  type Stanza,
} from '../../src/pipeline/encryption/age-keys.ts';
import {
  CHUNK,
  decryptBuffer,
  encryptBuffer,
  probeHeader,
} from '../../src/pipeline/encryption/age-stream.ts';

// The age spec (age-encryption.org/v1): "an scrypt stanza ... MUST be the only stanza in the
// header". These files are built by hand (stanzas, MAC and all) so that everything else about
// them is valid: only the stanza mix can be the reason a reader refuses them.
const dir = mkdtempSync(path.join(os.tmpdir(), 'warden-scrypt-alone-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const alice = X25519Identity.generate();
const passphrase = 'correct horse battery staple';
const plain = randomBytes(CHUNK + 321);

function headerText(stanzas: readonly Stanza[], fileKey: Buffer): Buffer {
  let text = 'age-encryption.org/v1\n';
  for (const stanza of stanzas) {
    text += `-> ${stanza.args.join(' ')}\n`;
    const body = stanza.body.toString('base64').replace(/=+$/, '');
    for (let i = 0; i < body.length; i += 64) text += `${body.slice(i, i + 64)}\n`;
    if (body.length % 64 === 0) text += '\n';
  }
  text += '---';
  const macKey = Buffer.from(hkdfSync('sha256', fileKey, Buffer.alloc(0), 'header', 32));
  const mac = createHmac('sha256', macKey).update(text).digest('base64').replace(/=+$/, '');
  return Buffer.from(`${text} ${mac}\n`);
}

/** A file encrypted to alice, re-headed with the given stanza types (same file key, valid MAC). */
async function reheaded(types: ReadonlyArray<'X25519' | 'scrypt'>): Promise<Buffer> {
  const original = await encryptBuffer(plain, [alice.recipient]);
  const headerEnd = original.indexOf('\n', original.indexOf('\n---') + 1) + 1;
  const x25519 = /^-> X25519 .*\n.*\n/m.exec(original.toString('latin1', 0, headerEnd))![0].split('\n');
  const aliceStanza: Stanza = {
    args: x25519[0]!.slice(3).split(' '),
    body: Buffer.from(x25519[1]!, 'base64'),
  };
  const fileKey = (await alice.unwrap([aliceStanza]))!;
  assert.ok(fileKey, 'alice opens her own stanza');
  const stanzas: Stanza[] = [];
  for (const type of types) {
    if (type === 'X25519') stanzas.push(aliceStanza);
    else stanzas.push(...(await new ScryptRecipient(passphrase, 10).wrap(fileKey)));
  }
  return Buffer.concat([headerText(stanzas, fileKey), original.subarray(headerEnd)]);
}

function expectScryptNotAlone(error: unknown): boolean {
  assert.ok(isWardenError(error, 'WARDEN_E_REPO_CORRUPT'), String(error));
  assert.equal(error.details.problem, 'scrypt-not-alone', error.message);
  assert.equal(error.details.object, 'wal/00000001/x.zst.age');
  return true;
}

test('hand-built headers are valid age files when the scrypt stanza is alone or absent', async () => {
  const x25519Only = await reheaded(['X25519']);
  assert.ok((await decryptBuffer(x25519Only, { identities: [alice] })).equals(plain));
  const scryptOnly = await reheaded(['scrypt']);
  assert.ok(
    (await decryptBuffer(scryptOnly, { identities: [new ScryptIdentity(passphrase)] })).equals(plain),
  );
});

test('a scrypt stanza beside an X25519 stanza is refused, whatever identity decrypts', async () => {
  const options = (identities: Array<X25519Identity | ScryptIdentity>) => ({
    identities,
    object: 'wal/00000001/x.zst.age',
  });
  for (const order of [
    ['X25519', 'scrypt'],
    ['scrypt', 'X25519'],
    ['scrypt', 'scrypt'],
  ] as const) {
    const mixed = await reheaded(order);
    await assert.rejects(decryptBuffer(mixed, options([alice])), expectScryptNotAlone, order.join());
    await assert.rejects(
      decryptBuffer(mixed, options([new ScryptIdentity(passphrase)])),
      expectScryptNotAlone,
      order.join(),
    );
    // Refused from the header alone, and even with no identity at all (not "key missing").
    const header = mixed.subarray(0, mixed.indexOf('\n', mixed.indexOf('\n---') + 1) + 1);
    await assert.rejects(probeHeader(Readable.from([header]), options([alice])), expectScryptNotAlone);
    await assert.rejects(decryptBuffer(mixed, options([])), expectScryptNotAlone);
  }
});

/** age reads passphrases from the terminal only; run it in a pseudo-terminal, return its output. */
async function ageWithPassphrase(args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn('script', ['-qec', ['age', ...args].join(' '), '/dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (data: Buffer) => (output += data.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  // age prompts once; answering before it asks is fine (the terminal buffers the line).
  await new Promise((resolve) => setTimeout(resolve, 700));
  child.stdin.write(`${passphrase}\n`);
  const code = await exited;
  child.stdin.destroy();
  return { code, output };
}

// The reference implementations enforce the rule inside their scrypt identity only: the `age`
// tool (1.1.1) and the age-encryption library refuse a mixed header when given the passphrase,
// but open it with the X25519 identity. Warden refuses it either way, as the spec says.
test('the age tool and the age-encryption library refuse the mixed header with the passphrase', async () => {
  const identityFile = path.join(dir, 'alice.txt');
  writeFileSync(identityFile, `${alice.encode()}\n`, { mode: 0o600 });
  writeFileSync(path.join(dir, 'x25519.age'), await reheaded(['X25519']));
  const out = execFileSync('age', ['-d', '-i', identityFile, path.join(dir, 'x25519.age')], {
    maxBuffer: 1 << 24,
  });
  assert.ok(out.equals(plain), 'age opens the hand-built X25519 file');
  writeFileSync(path.join(dir, 'scrypt.age'), await reheaded(['scrypt']));
  const alone = await ageWithPassphrase([
    '-d',
    '-o',
    path.join(dir, 'scrypt.out'),
    path.join(dir, 'scrypt.age'),
  ]);
  assert.equal(alone.code, 0, alone.output);
  assert.ok(readFileSync(path.join(dir, 'scrypt.out')).equals(plain), 'age opens the hand-built scrypt file');

  const mixed = await reheaded(['X25519', 'scrypt']);
  writeFileSync(path.join(dir, 'mixed.age'), mixed);
  const refused = await ageWithPassphrase([
    '-d',
    '-o',
    path.join(dir, 'mixed.out'),
    path.join(dir, 'mixed.age'),
  ]);
  assert.notEqual(refused.code, 0, refused.output);
  assert.match(refused.output, /scrypt/i);

  const decrypter = new Decrypter();
  decrypter.addPassphrase(passphrase);
  await assert.rejects(decrypter.decrypt(mixed), /scrypt recipient is not the only one/);
});
