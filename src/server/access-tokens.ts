import { createHash, timingSafeEqual } from 'node:crypto';
import type { HttpRole, HttpToken } from '../daemon/http-config.ts';

/** Who a request acts as. `name` is the configured token's name (never the token). */
export interface HttpIdentity {
  name: string;
  role: HttpRole;
  /** How it was established: a bearer token, a session cookie, or none (loopback without tokens). */
  via: 'token' | 'session' | 'anonymous';
}

/**
 * The configured bearer tokens, held as SHA-256 digests. A presented token is hashed and compared
 * with every digest in constant time, so neither the token nor which entry is closest leaks
 * through timing.
 */
export class AccessTokens {
  private readonly entries: { name: string; role: HttpRole; digest: Buffer }[];

  constructor(tokens: readonly HttpToken[]) {
    this.entries = tokens.map((t) => ({ name: t.name, role: t.role, digest: Buffer.from(t.sha256, 'hex') }));
  }

  /** False when none are configured: requests are then anonymous viewers. */
  get required(): boolean {
    return this.entries.length > 0;
  }

  verify(token: string): Omit<HttpIdentity, 'via'> | undefined {
    const digest = createHash('sha256').update(token, 'utf8').digest();
    let found: (typeof this.entries)[number] | undefined;
    for (const entry of this.entries) {
      // Compare against every entry, without stopping at the first match.
      if (timingSafeEqual(digest, entry.digest) && !found) found = entry;
    }
    return found ? { name: found.name, role: found.role } : undefined;
  }
}

const RANK: Record<HttpRole, number> = { viewer: 0, operator: 1 };

/** True when `role` may do what `needed` may (an operator may do what a viewer may). */
export function roleAllows(role: HttpRole, needed: HttpRole): boolean {
  return RANK[role] >= RANK[needed];
}
