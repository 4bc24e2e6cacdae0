import { createHash, randomBytes } from 'node:crypto';
import type { HttpIdentity } from './access-tokens.ts';

interface Session {
  identity: Omit<HttpIdentity, 'via'>;
  expiresAt: number;
}

/**
 * Browser sessions after a token sign-in, in memory: the cookie holds a random 256-bit id, never
 * the token. The map is keyed by the id's SHA-256, so a lookup's timing says nothing about live
 * ids. Sessions expire `ttlMs` after sign-in; a restart signs everyone out.
 */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly ttlMs: number,
    /** Oldest sessions are dropped beyond this many. */
    private readonly max = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  create(identity: Omit<HttpIdentity, 'via'>): { id: string; expiresAt: Date } {
    this.prune();
    while (this.sessions.size >= this.max) this.sessions.delete(this.sessions.keys().next().value!);
    const id = randomBytes(32).toString('base64url');
    const expiresAt = this.now() + this.ttlMs;
    this.sessions.set(key(id), { identity: { name: identity.name, role: identity.role }, expiresAt });
    return { id, expiresAt: new Date(expiresAt) };
  }

  get(id: string): Omit<HttpIdentity, 'via'> | undefined {
    const session = this.sessions.get(key(id));
    if (!session) return undefined;
    if (session.expiresAt <= this.now()) {
      this.sessions.delete(key(id));
      return undefined;
    }
    return session.identity;
  }

  delete(id: string): void {
    this.sessions.delete(key(id));
  }

  get ttlSeconds(): number {
    return Math.floor(this.ttlMs / 1000);
  }

  private prune(): void {
    const now = this.now();
    for (const [k, session] of this.sessions) if (session.expiresAt <= now) this.sessions.delete(k);
  }
}

function key(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}
