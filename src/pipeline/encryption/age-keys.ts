import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  scrypt,
  type KeyObject,
} from 'node:crypto';
import { bech32Decode, bech32Encode } from './bech32.ts';

/** One `-> type args...` section of an age header; `args[0]` is the stanza type. */
export interface Stanza {
  args: string[];
  body: Buffer;
}

/** Something a file key can be encrypted to (X25519 public key, passphrase). */
export interface AgeRecipient {
  /** How the recipient is named in records: `age1...` or `scrypt`. Never secret. */
  readonly label: string;
  wrap(fileKey: Buffer): Promise<Stanza[]>;
}

/** Something that can unwrap a file key (X25519 secret key, passphrase). */
export interface AgeIdentity {
  /** The matching recipient's label (`age1...`, `scrypt`); never the secret. */
  readonly label: string;
  /** The file key, or null when none of the stanzas is for this identity. */
  unwrap(stanzas: readonly Stanza[]): Promise<Buffer | null>;
}

const X25519_INFO = 'age-encryption.org/v1/X25519';
const SCRYPT_LABEL = 'age-encryption.org/v1/scrypt';
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');
const ZERO_NONCE = Buffer.alloc(12);

export function b64(data: Buffer): string {
  return data.toString('base64').replace(/=+$/, '');
}

/** Strict unpadded base64: rejects padding and non-canonical encodings, as the spec demands. */
export function unb64(text: string): Buffer {
  if (!/^[A-Za-z0-9+/]*$/.test(text)) throw new Error('invalid base64');
  const data = Buffer.from(text, 'base64');
  if (b64(data) !== text) throw new Error('non-canonical base64');
  return data;
}

function aeadSeal(key: Buffer, plaintext: Buffer): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: 16 });
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

function aeadOpen(key: Buffer, sealed: Buffer): Buffer | null {
  if (sealed.length < 16) return null;
  const decipher = createDecipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: 16 });
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]);
  } catch {
    return null;
  }
}

function hkdf(ikm: Buffer, salt: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));
}

function publicKeyObject(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' });
}

function rawPublicKey(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' }).subarray(SPKI_X25519.length);
}

/** An X25519 recipient, `age1...`. */
export class X25519Recipient implements AgeRecipient {
  readonly label: string;
  private readonly key: KeyObject;

  constructor(readonly publicKey: Buffer) {
    if (publicKey.length !== 32) throw new Error('an X25519 public key is 32 bytes');
    this.key = publicKeyObject(publicKey);
    this.label = bech32Encode('age', publicKey);
  }

  /** Parses `age1...`; throws with a reason when it is not a valid X25519 recipient. */
  static parse(text: string): X25519Recipient {
    const { hrp, data } = bech32Decode(text.trim());
    if (hrp !== 'age' || data.length !== 32) throw new Error('not an age X25519 recipient (age1...)');
    return new X25519Recipient(data);
  }

  async wrap(fileKey: Buffer): Promise<Stanza[]> {
    const ephemeral = generateKeyPairSync('x25519');
    const share = rawPublicKey(ephemeral.publicKey);
    const secret = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: this.key });
    const key = hkdf(secret, Buffer.concat([share, this.publicKey]), X25519_INFO);
    return [{ args: ['X25519', b64(share)], body: aeadSeal(key, fileKey) }];
  }
}

/** An X25519 identity, `AGE-SECRET-KEY-1...`. */
export class X25519Identity implements AgeIdentity {
  readonly recipient: X25519Recipient;
  private readonly key: KeyObject;

  private constructor(private readonly secret: Buffer) {
    this.key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, secret]), format: 'der', type: 'pkcs8' });
    this.recipient = new X25519Recipient(rawPublicKey(createPublicKey(this.key)));
  }

  static generate(): X25519Identity {
    return new X25519Identity(randomBytes(32));
  }

  static parse(text: string): X25519Identity {
    const { hrp, data } = bech32Decode(text.trim());
    if (hrp !== 'age-secret-key-' || data.length !== 32)
      throw new Error('not an age X25519 identity (AGE-SECRET-KEY-1...)');
    return new X25519Identity(data);
  }

  get label(): string {
    return this.recipient.label;
  }

  /** The secret encoding, `AGE-SECRET-KEY-1...`; handle with care. */
  encode(): string {
    return bech32Encode('age-secret-key-', this.secret).toUpperCase();
  }

  async unwrap(stanzas: readonly Stanza[]): Promise<Buffer | null> {
    for (const stanza of stanzas) {
      if (stanza.args[0] !== 'X25519') continue;
      if (stanza.args.length !== 2 || stanza.body.length !== 32) throw new Error('malformed X25519 stanza');
      const share = unb64(stanza.args[1]!);
      if (share.length !== 32) throw new Error('malformed X25519 stanza');
      const secret = diffieHellman({ privateKey: this.key, publicKey: publicKeyObject(share) });
      if (secret.every((byte) => byte === 0)) throw new Error('X25519 share is a low-order point');
      const key = hkdf(secret, Buffer.concat([share, this.recipient.publicKey]), X25519_INFO);
      const fileKey = aeadOpen(key, stanza.body);
      if (fileKey) return fileKey;
    }
    return null;
  }
}

function deriveScrypt(passphrase: string, salt: Buffer, logN: number): Promise<Buffer> {
  const N = 2 ** logN;
  return new Promise((resolve, reject) =>
    scrypt(
      passphrase,
      Buffer.concat([Buffer.from(SCRYPT_LABEL), salt]),
      32,
      { N, r: 8, p: 1, maxmem: 128 * 8 * N + 16 * 1024 * 1024 },
      (error, key) => (error ? reject(error) : resolve(key)),
    ),
  );
}

/** Passphrase encryption: one `-> scrypt <salt> <logN>` stanza, which must stand alone. */
export class ScryptRecipient implements AgeRecipient {
  readonly label = 'scrypt';

  constructor(
    private readonly passphrase: string,
    private readonly logN = 18,
  ) {}

  async wrap(fileKey: Buffer): Promise<Stanza[]> {
    const salt = randomBytes(16);
    const key = await deriveScrypt(this.passphrase, salt, this.logN);
    return [{ args: ['scrypt', b64(salt), String(this.logN)], body: aeadSeal(key, fileKey) }];
  }
}

export class ScryptIdentity implements AgeIdentity {
  readonly label = 'scrypt';

  /** `maxLogN` bounds the work an attacker-supplied header can make us do (20 = 1 GiB, ~2 s). */
  constructor(
    private readonly passphrase: string,
    private readonly maxLogN = 20,
  ) {}

  async unwrap(stanzas: readonly Stanza[]): Promise<Buffer | null> {
    const stanza = stanzas.find((s) => s.args[0] === 'scrypt');
    if (!stanza) return null;
    if (stanzas.length !== 1) throw new Error('a scrypt stanza must be the only stanza');
    const [, saltText = '', logNText = ''] = stanza.args;
    const salt = unb64(saltText);
    if (
      stanza.args.length !== 3 ||
      salt.length !== 16 ||
      !/^[1-9][0-9]*$/.test(logNText) ||
      stanza.body.length !== 32
    )
      throw new Error('malformed scrypt stanza');
    const logN = Number(logNText);
    if (logN > this.maxLogN) throw new Error(`scrypt work factor ${logN} exceeds the limit ${this.maxLogN}`);
    return aeadOpen(await deriveScrypt(this.passphrase, salt, logN), stanza.body);
  }
}

/** Parses an identity file: `AGE-SECRET-KEY-1...` lines; `#` comments and blank lines ignored. */
export function parseIdentities(text: string): X25519Identity[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => X25519Identity.parse(line));
}

/** Parses a recipients file: `age1...` lines; `#` comments and blank lines ignored. */
export function parseRecipients(text: string): X25519Recipient[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => X25519Recipient.parse(line));
}
