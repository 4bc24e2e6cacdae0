import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { WardenError } from '../../errors.ts';

const VERSION = 'v1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;

function deriveKey(sessionId: string, salt: string): Buffer {
  return Buffer.from(hkdfSync('sha256', sessionId, salt, 'warden-session-data-v1', 32));
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
): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(sessionId, salt), iv);
  cipher.setAAD(Buffer.from(handle));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return VERSION + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

/** Raises `WARDEN_E_SESSION_INVALID` when the data was altered or belongs to another id. */
export function decryptSessionData(stored: string, sessionId: string, handle: string, salt: string): string {
  try {
    if (!stored.startsWith(VERSION)) throw new Error('unknown session data format');
    const raw = Buffer.from(stored.slice(VERSION.length), 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', deriveKey(sessionId, salt), raw.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(handle));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString(
      'utf8',
    );
  } catch (error) {
    throw new WardenError('WARDEN_E_SESSION_INVALID', 'session data failed authentication', {
      cause: error,
      details: { handle },
    });
  }
}
