import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { Decrypter, Encrypter, generateIdentity, identityToRecipient } from 'age-encryption';
import {
  parseIdentities,
  ScryptIdentity,
  ScryptRecipient,
  X25519Identity,
  X25519Recipient,
} from '../../src/pipeline/encryption/age-keys.ts';
import { decryptBuffer, encryptBuffer } from '../../src/pipeline/encryption/age-stream.ts';

// Proves the format against the reference implementation (the `age` tool) and the
// `age-encryption` library, in both directions, for X25519 recipients and passphrases.
const dir = mkdtempSync(path.join(os.tmpdir(), 'warden-age-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string) => path.join(dir, name);
// Several chunks plus a short last one.
const plain = randomBytes(3 * 64 * 1024 + 333);

/** age asks for passphrases on the terminal only; drive it through a pseudo-terminal. */
async function ageWithPassphrase(args: string[], passphrase: string, prompts: number): Promise<void> {
  const child = spawn('script', ['-qec', ['age', ...args].join(' '), '/dev/null'], {
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  for (let i = 0; i < prompts; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 700));
    child.stdin.write(`${passphrase}\n`);
  }
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  child.stdin.destroy();
  assert.equal(code, 0, `age ${args.join(' ')}`);
}

test('the age tool decrypts what Warden encrypts to an X25519 recipient from age-keygen', async () => {
  execFileSync('age-keygen', ['-o', file('keygen.txt')], { stdio: 'ignore' });
  const [identity] = parseIdentities(readFileSync(file('keygen.txt'), 'utf8'));
  const publicLine = /# public key: (age1\S+)/.exec(readFileSync(file('keygen.txt'), 'utf8'))![1];
  assert.equal(identity!.label, publicLine, 'same public key derived from the secret key');
  writeFileSync(file('w.age'), await encryptBuffer(plain, [X25519Recipient.parse(publicLine!)]));
  const out = execFileSync('age', ['-d', '-i', file('keygen.txt'), file('w.age')], { maxBuffer: 1 << 26 });
  assert.ok(out.equals(plain));
});

test('Warden decrypts what the age tool encrypts to a Warden-generated recipient', async () => {
  const identity = X25519Identity.generate();
  writeFileSync(file('warden-id.txt'), `${identity.encode()}\n`, { mode: 0o600 });
  writeFileSync(file('plain.bin'), plain);
  execFileSync('age', [
    '-r',
    identity.label,
    '-r',
    X25519Identity.generate().label,
    '-o',
    file('a.age'),
    file('plain.bin'),
  ]);
  const [parsed] = parseIdentities(readFileSync(file('warden-id.txt'), 'utf8'));
  assert.ok((await decryptBuffer(readFileSync(file('a.age')), { identities: [parsed!] })).equals(plain));
  // and the identity file works for age itself
  execFileSync('age', ['-d', '-i', file('warden-id.txt'), '-o', file('a.out'), file('a.age')]);
  assert.ok(readFileSync(file('a.out')).equals(plain));
});

test('passphrase files interoperate with the age tool both ways (scrypt)', async () => {
  writeFileSync(file('ws.age'), await encryptBuffer(plain, [new ScryptRecipient('tr0ub4dor&3', 15)]));
  await ageWithPassphrase(['-d', '-o', file('ws.out'), file('ws.age')], 'tr0ub4dor&3', 1);
  assert.ok(readFileSync(file('ws.out')).equals(plain));
  writeFileSync(file('plain.bin'), plain);
  await ageWithPassphrase(['-p', '-o', file('as.age'), file('plain.bin')], 'tr0ub4dor&3', 2);
  const decrypted = await decryptBuffer(readFileSync(file('as.age')), {
    identities: [new ScryptIdentity('tr0ub4dor&3')],
  });
  assert.ok(decrypted.equals(plain));
});

test('the age-encryption library and Warden read each other’s X25519 files', async () => {
  const theirIdentity = await generateIdentity();
  const theirRecipient = await identityToRecipient(theirIdentity);
  const ours = await encryptBuffer(plain, [X25519Recipient.parse(theirRecipient)]);
  const decrypter = new Decrypter();
  decrypter.addIdentity(theirIdentity);
  assert.ok(Buffer.from(await decrypter.decrypt(ours)).equals(plain));

  const ourIdentity = X25519Identity.generate();
  const encrypter = new Encrypter();
  encrypter.addRecipient(ourIdentity.label);
  const theirs = Buffer.from(await encrypter.encrypt(plain));
  assert.ok((await decryptBuffer(theirs, { identities: [ourIdentity] })).equals(plain));
  // identities parse the same on both sides
  assert.equal(X25519Identity.parse(theirIdentity).label, theirRecipient);
});

test('the age-encryption library and Warden read each other’s passphrase files', async () => {
  const ours = await encryptBuffer(plain, [new ScryptRecipient('correct horse battery', 12)]);
  const decrypter = new Decrypter();
  decrypter.addPassphrase('correct horse battery');
  assert.ok(Buffer.from(await decrypter.decrypt(ours)).equals(plain));

  const encrypter = new Encrypter();
  encrypter.setPassphrase('correct horse battery');
  encrypter.setScryptWorkFactor(12);
  const theirs = Buffer.from(await encrypter.encrypt(plain));
  const decrypted = await decryptBuffer(theirs, {
    identities: [new ScryptIdentity('correct horse battery')],
  });
  assert.ok(decrypted.equals(plain));
});
