import { createHash, randomBytes } from 'node:crypto';

/**
 * A new session id: 256 bits from the OS CSPRNG, base64url (43 characters). The id is a bearer
 * secret: Redis only ever sees its SHA-256 ({@link sessionHandle}), and the encryption key of
 * the session's data is derived from it.
 *
 * @example
 * app.use(session({ store, genid: generateSessionId, secret: cookieSecret }));
 */
export function generateSessionId(): string {
  return randomBytes(32).toString('base64url');
}

/** The name under which a session is stored and listed; reveals nothing about the id. */
export function sessionHandle(sessionId: string): string {
  return createHash('sha256').update(sessionId).digest('base64url');
}
