import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { DataLayerError } from '../errors.ts';

const VERSION = 'v1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** The AES key of one session's data: HKDF-SHA256 of its id and the store's salt. */
export function deriveSessionKey(sessionId: string, salt: string): Buffer {
  return Buffer.from(hkdfSync('sha256', sessionId, salt, 'warden-session-data-v1', 32));
}

/**
 * Derived keys of recently used sessions, keyed by handle (SHA-256 of the id, never the id
 * itself), so a request's load and save derive the key once instead of twice (HKDF is most of
 * the cost of encryption). Bounded LRU; one cache per salt, i.e. per store.
 */
export class SessionKeyCache {
  readonly #keys = new Map<string, Buffer>();

  constructor(
    readonly salt: string,
    readonly maxEntries = 1024,
  ) {}

  keyOf(sessionId: string, handle: string): Buffer {
    let key = this.#keys.get(handle);
    if (key) {
      // re-insert to mark as most recently used
      this.#keys.delete(handle);
    } else {
      key = deriveSessionKey(sessionId, this.salt);
      if (this.#keys.size >= this.maxEntries) {
        const oldest = this.#keys.keys().next();
        if (!oldest.done) this.#keys.delete(oldest.value);
      }
    }
    this.#keys.set(handle, key);
    return key;
  }
}

// IVs come from a pool of CSPRNG bytes that is replaced (never refilled in place) when used up:
// every IV is still 96 fresh random bits, without a randomBytes call per encryption.
const IV_POOL_BYTES = IV_BYTES * 256;
let ivPool = Buffer.alloc(0);
let ivOffset = 0;

function nextIv(): Buffer {
  if (ivOffset + IV_BYTES > ivPool.length) {
    ivPool = randomBytes(IV_POOL_BYTES);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + IV_BYTES);
  ivOffset += IV_BYTES;
  return iv;
}

/**
 * Encrypts session data with AES-256-GCM under a key derived (HKDF-SHA256) from the session id,
 * which is never stored in Redis: a copy of Redis alone does not reveal session contents. The
 * handle is authenticated as associated data, so a ciphertext cannot be moved to another session.
 */
export function encryptSessionData(
  plaintext: string,
  sessionId: string,
  handle: string,
  salt: string,
  key: Buffer = deriveSessionKey(sessionId, salt),
): string {
  const iv = nextIv();
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(handle));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return VERSION + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

/**
 * Raises `WARDEN_E_SESSION_INVALID` when the data was altered or belongs to another id. `key`,
 * when given, must be `deriveSessionKey(sessionId, salt)`.
 */
export function decryptSessionData(
  stored: string,
  sessionId: string,
  handle: string,
  salt: string,
  key?: Buffer,
): string {
  try {
    if (!stored.startsWith(VERSION)) throw new Error('unknown session data format');
    const raw = Buffer.from(stored.slice(VERSION.length), 'base64url');
    const decipher = createDecipheriv(
      'aes-256-gcm',
      key ?? deriveSessionKey(sessionId, salt),
      raw.subarray(0, IV_BYTES),
    );
    decipher.setAAD(Buffer.from(handle));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString(
      'utf8',
    );
  } catch (error) {
    throw new DataLayerError('WARDEN_E_SESSION_INVALID', 'session data failed authentication', {
      cause: error,
      details: { handle },
    });
  }
}
