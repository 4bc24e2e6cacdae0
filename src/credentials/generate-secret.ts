import { randomBytes } from 'node:crypto';

/** Bytes of randomness in a generated password: 256 bits, 43 characters once encoded. */
const SECRET_BYTES = 32;

/**
 * A new password from the operating system's CSPRNG, base64url-encoded: 43 characters of
 * `A-Z a-z 0-9 - _`, so it needs no quoting in a URL, a libpq password file, YAML or a shell.
 */
export function generateSecret(): string {
  return randomBytes(SECRET_BYTES).toString('base64url');
}
