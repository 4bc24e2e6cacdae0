import type { Logger } from '../logger.ts';
import type { DbConnection } from './driver.ts';
import type { HostState } from './host-monitor.ts';
import { parseLsn, type Lsn } from './lsn.ts';

const MAX_SESSIONS = 100_000;
/** Never reached by a real server: forces a session's reads to the primary. */
const UNKNOWN_POSITION: Lsn = (1n << 64n) - 1n;
const CAPTURE_LSN_SQL = 'SELECT pg_current_wal_insert_lsn()::text AS lsn';

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

  /** Remembers the primary's WAL position after `session`'s write on `connection`. */
  async capture(connection: DbConnection, session: string, logger: Logger): Promise<void> {
    try {
      const { rows } = await connection.query<{ lsn: string }>(CAPTURE_LSN_SQL);
      this.remember(session, rows[0] ? parseLsn(rows[0].lsn) : UNKNOWN_POSITION);
    } catch (error) {
      // The write is done; without its position this session reads from the primary for a while.
      this.remember(session, UNKNOWN_POSITION);
      logger.debug({ session, err: String(error) }, 'could not capture write position');
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

/** The lowest position every replica has replayed; undefined when a replica is down or unknown. */
export function replayedEverywhere(states: readonly HostState[]): Lsn | undefined {
  const replicas = states.filter((s) => s.inRecovery === true);
  if (replicas.length === 0 || replicas.some((s) => s.status !== 'up' || s.lsn === null)) return undefined;
  return replicas.reduce<Lsn>((min, s) => (s.lsn !== null && s.lsn < min ? s.lsn : min), UNKNOWN_POSITION);
}
