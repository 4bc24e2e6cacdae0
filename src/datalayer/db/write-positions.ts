import type { Lsn } from './lsn.ts';

const MAX_SESSIONS = 100_000;

/**
 * Read-your-writes memory: the WAL position of each session's last write. A session's reads may
 * use a replica only once it has replayed past that position. Entries expire after `ttlMs`
 * (by then every healthy replica is far past them) and the oldest go first beyond 100 000.
 */
export class WritePositions {
  private readonly positions = new Map<string, { lsn: Lsn; at: number }>();

  constructor(private readonly ttlMs: number) {}

  remember(session: string, lsn: Lsn): void {
    const previous = this.positions.get(session);
    this.positions.delete(session);
    this.positions.set(session, { lsn: previous && previous.lsn > lsn ? previous.lsn : lsn, at: Date.now() });
    if (this.positions.size > MAX_SESSIONS) {
      const oldest = this.positions.keys().next().value;
      if (oldest !== undefined) this.positions.delete(oldest);
    }
  }

  /** The position a replica must have replayed to serve this session, if any. */
  required(session: string): Lsn | undefined {
    const entry = this.positions.get(session);
    if (!entry) return undefined;
    if (Date.now() - entry.at > this.ttlMs) {
      this.positions.delete(session);
      return undefined;
    }
    return entry.lsn;
  }

  /** Forgets positions every replica has replayed, and expired ones. */
  prune(replayedEverywhere: Lsn | undefined): void {
    const now = Date.now();
    for (const [session, entry] of this.positions) {
      if (
        now - entry.at > this.ttlMs ||
        (replayedEverywhere !== undefined && entry.lsn <= replayedEverywhere)
      ) {
        this.positions.delete(session);
      }
    }
  }

  get size(): number {
    return this.positions.size;
  }
}
