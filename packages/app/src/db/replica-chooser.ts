import { DataLayerError } from '../errors.ts';
import type { HostMonitor } from './host-monitor.ts';
import { parseLsnOrNull } from './lsn.ts';
import type { Membership } from './membership.ts';
import type { Lease } from './pool.ts';
import type { PrimaryTracker } from './primary-tracker.ts';
import type { RoutingStats } from './types.ts';
import type { WritePositions } from './write-positions.ts';

export interface ReplicaChooserOptions {
  readonly monitor: HostMonitor;
  readonly membership: Membership;
  readonly primary: PrimaryTracker;
  readonly positions: WritePositions;
  readonly maxReplicaLagMs: number;
  /** The router's counters: the fallbacks and replica failures are counted here. */
  readonly routing: RoutingStats;
}

/** A connection on loan from replica `key`. */
export interface ReplicaLease {
  readonly lease: Lease;
  readonly key: string;
}

/**
 * Picks the replica for a read: healthy, within the lag bound, and past the session's last
 * write (read-your-writes), round robin among those that qualify.
 */
export class ReplicaChooser {
  private readonly options: ReplicaChooserOptions;
  private roundRobin = 0;

  constructor(options: ReplicaChooserOptions) {
    this.options = options;
  }

  /** A connection to a replica fit for this session's read, or undefined to use the primary. */
  async lease(sql: string, session: string | undefined): Promise<ReplicaLease | undefined> {
    const { monitor, primary, positions, routing, maxReplicaLagMs } = this.options;
    const candidates = monitor
      .all()
      .filter(
        (s) =>
          s.status === 'up' &&
          s.inRecovery === true &&
          s.key !== primary.key &&
          s.lagMs !== undefined &&
          s.lagMs <= maxReplicaLagMs,
      );
    if (candidates.length === 0) {
      routing.fallbackNoReplica += 1;
      return undefined;
    }
    const required = session === undefined ? undefined : positions.required(session);
    const ready =
      required === undefined ? candidates : candidates.filter((s) => s.lsn !== null && s.lsn >= required);
    if (ready.length > 0) {
      this.roundRobin = (this.roundRobin + 1) % ready.length;
      const key = ready[this.roundRobin]!.key;
      return this.leaseFrom(key, sql);
    }
    // The last poll may be older than the write: ask the most advanced replica directly.
    const best = candidates.reduce((a, b) => ((a.lsn ?? 0n) >= (b.lsn ?? 0n) ? a : b));
    const attempt = await this.leaseFrom(best.key, sql);
    if (attempt && required !== undefined) {
      try {
        const { rows } = await attempt.lease.connection.query<{ lsn: string | null }>(
          'SELECT pg_last_wal_replay_lsn()::text AS lsn',
        );
        const replayed = parseLsnOrNull(rows[0]?.lsn);
        if (replayed !== null) monitor.noteReplayed(best.key, replayed);
        if (replayed !== null && replayed >= required) return attempt;
        attempt.lease.release();
      } catch (error) {
        attempt.lease.release(true);
        this.failed(best.key, error);
      }
    }
    routing.fallbackReadYourWrites += 1;
    return undefined;
  }

  /** Replica `key` failed: counted, marked down until a health check succeeds, its pool emptied. */
  failed(key: string, error: unknown): void {
    this.options.routing.replicaFailures += 1;
    this.options.monitor.markDown(key, error instanceof Error ? error.message : String(error));
    this.options.membership.pool(key)?.evictAll();
  }

  private async leaseFrom(key: string, sql: string): Promise<ReplicaLease | undefined> {
    const pool = this.options.membership.pool(key);
    if (!pool) return undefined;
    try {
      return { lease: pool.tryAcquire(sql) ?? (await pool.acquire(sql)), key };
    } catch (error) {
      if (error instanceof DataLayerError && error.code === 'WARDEN_E_POOL_TIMEOUT') throw error;
      this.failed(key, error);
      return undefined;
    }
  }
}
