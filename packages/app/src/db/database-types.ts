import type { PoolStats } from './pool-types.ts';
import type { TopologyStats } from './topology-refresher.ts';
import type { PoolRole, RoutingStats } from './types.ts';

export interface QueryOptions {
  /** Which pool runs the statement; default `write` (the primary). `read` may use a replica. */
  role?: PoolRole;
  /** Read-your-writes scope (a session or request id): reads see this scope's earlier writes. */
  session?: string;
}

export interface TransactionOptions {
  /** `write` (default) or `batch`; transactions always run on the primary. */
  role?: Exclude<PoolRole, 'read'>;
  session?: string;
}

export interface DatabaseStats {
  readonly primary: string | undefined;
  readonly pools: {
    readonly write: PoolStats;
    readonly batch: PoolStats;
    readonly read: Record<string, PoolStats>;
  };
  readonly hosts: ReadonlyArray<Record<string, unknown>>;
  readonly routing: Readonly<RoutingStats>;
  readonly sessionsTracked: number;
  /** Patroni refreshes (with `patroni` only). */
  readonly topology: TopologyStats | undefined;
}
