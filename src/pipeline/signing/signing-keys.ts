import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { bech32Decode, bech32Encode } from '../encryption/bech32.ts';

/** DER prefixes that make a raw 32-byte Ed25519 key a PKCS#8 / SPKI key node:crypto accepts. */
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

const PUBLIC_HRP = 'wardensig';
const SECRET_HRP = 'warden-signing-key-';

/**
 * A public signing key, `wardensig1...` (bech32 of the raw Ed25519 key, as age spells
 * `age1...`). Readers trust a set of these; the text is also the key id recorded in signatures.
 */
export class SigningPublicKey {
  readonly id: string;
  private readonly key: KeyObject;

  constructor(readonly raw: Buffer) {
    if (raw.length !== 32) throw new Error('an Ed25519 public key is 32 bytes');
    this.key = createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
    this.id = bech32Encode(PUBLIC_HRP, raw);
  }

  /** Parses `wardensig1...`; throws with a reason when it is not one. */
  static parse(text: string): SigningPublicKey {
    const { hrp, data } = bech32Decode(text.trim());
    if (hrp !== PUBLIC_HRP || data.length !== 32)
      throw new Error('not a Warden signing public key (wardensig1...)');
    return new SigningPublicKey(data);
  }

  verify(message: Buffer, signature: Buffer): boolean {
    if (signature.length !== 64) return false;
    return verify(null, message, this.key, signature);
  }
}

/** An Ed25519 signing key, `WARDEN-SIGNING-KEY-1...`: held by backup writers, never stored in a repository. */
export class SigningKey {
  readonly publicKey: SigningPublicKey;
  private readonly key: KeyObject;

  private constructor(private readonly seed: Buffer) {
    this.key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' });
    const spki = createPublicKey(this.key).export({ format: 'der', type: 'spki' });
    this.publicKey = new SigningPublicKey(spki.subarray(SPKI_ED25519.length));
  }

  static generate(): SigningKey {
    return new SigningKey(randomBytes(32));
  }

  static parse(text: string): SigningKey {
    const { hrp, data } = bech32Decode(text.trim());
    if (hrp !== SECRET_HRP || data.length !== 32)
      throw new Error('not a Warden signing key (WARDEN-SIGNING-KEY-1...)');
    return new SigningKey(data);
  }

  get id(): string {
    return this.publicKey.id;
  }

  /** The secret encoding; handle with care. */
  encode(): string {
    return bech32Encode(SECRET_HRP, this.seed).toUpperCase();
  }

  sign(message: Buffer): Buffer {
    return sign(null, message, this.key);
  }
}

/** Parses a key file's text: `#` comment lines and blank lines are ignored. */
function keyLines(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'));
}

export function parseSigningKeys(text: string): SigningKey[] {
  return keyLines(text).map((line) => SigningKey.parse(line));
}

export function parseSigningPublicKeys(text: string): SigningPublicKey[] {
  return keyLines(text).map((line) => SigningPublicKey.parse(line));
}

/** A signing key file (mode 0600): creation time, public key, secret key. */
export function signingKeyFileText(key: SigningKey, now = new Date()): string {
  return `# created: ${now.toISOString()}\n# public key: ${key.id}\n${key.encode()}\n`;
}
