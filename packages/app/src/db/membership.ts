import type { Logger } from '../logger.ts';
import type { MetricsOptions } from '../metrics/metrics-options.ts';
import type { DbConnection, HostTarget } from './driver.ts';
import type { HostMonitor } from './host-monitor.ts';
import type { PatroniView } from './patroni-topology.ts';
import { ConnectionPool, type PoolSettings, type PoolStats } from './pool.ts';
import { exportPoolMetrics } from './pool-metrics.ts';
import type { PrimaryTracker } from './primary-tracker.ts';

export interface MembershipOptions {
  /** The members at start: the configured hosts. */
  readonly hosts: readonly HostTarget[];
  /** Settings of each member's read pool. */
  readonly readPool: PoolSettings;
  /** Opens a session to one member (errors already typed). */
  readonly open: (host: HostTarget) => Promise<DbConnection>;
  /** The HostTarget of a member Patroni names; throws when its settings are refused. */
  readonly memberTarget: (host: string, port: number) => HostTarget;
  readonly monitor: HostMonitor;
  readonly primary: PrimaryTracker;
  /** Each read pool's metrics are exported here while the member is in (undefined: none). */
  readonly metrics: MetricsOptions | undefined;
  readonly logger: Logger;
  readonly poolLogger: Logger;
}

/** A Patroni answer that names a leader. */
export type LedView = PatroniView & { leader: NonNullable<PatroniView['leader']> };

/**
 * The members the router may use, each with its read pool: the configured hosts, or Patroni's
 * leader and serving replicas once {@link apply} follows an answer.
 */
export class Membership {
  /** The members now: the configured hosts, or Patroni's leader and serving replicas. */
  private members: readonly HostTarget[];
  private readonly readPools = new Map<string, ConnectionPool>();
  /** Pools of members Patroni dropped, closing once their borrowed connections come back. */
  private readonly draining = new Set<Promise<void>>();
  private readonly unexportReadPool = new Map<string, () => void>();
  private readonly options: MembershipOptions;

  constructor(options: MembershipOptions) {
    this.options = options;
    this.members = options.hosts;
    for (const host of this.members) this.addReadPool(host);
  }

  get hosts(): readonly HostTarget[] {
    return this.members;
  }

  /** The read pool of member `key`, undefined when it is not a member. */
  pool(key: string): ConnectionPool | undefined {
    return this.readPools.get(key);
  }

  pools(): IterableIterator<ConnectionPool> {
    return this.readPools.values();
  }

  /** Each member's read pool stats by `host:port`. */
  stats(): Record<string, PoolStats> {
    const read: Record<string, PoolStats> = {};
    for (const [key, pool] of this.readPools) read[key] = pool.stats();
    return read;
  }

  /**
   * Follows a Patroni answer: members it no longer lists are drained (their pool closes once the
   * statements running there finish; nothing in flight is cut), new members get a pool and health
   * checks (the pool starts at once when `startPools`), and Patroni's leader becomes the primary.
   * Returns whether anything changed.
   */
  apply(view: LedView, startPools: boolean): boolean {
    const { logger, primary } = this.options;
    const wanted: HostTarget[] = [];
    for (const member of [view.leader, ...view.replicas]) {
      try {
        wanted.push(this.options.memberTarget(member.host, member.port));
      } catch (error) {
        logger.warn(
          { member: member.name, err: error instanceof Error ? error.message : String(error) },
          'Patroni member left out: its connection settings are refused',
        );
      }
    }
    const leaderKey = `${view.leader.host}:${view.leader.port}`;
    const wantedKeys = new Set(wanted.map((h) => h.key));
    const current = new Set(this.members.map((h) => h.key));
    const added = wanted.filter((h) => !current.has(h.key));
    const removed = this.members.filter((h) => !wantedKeys.has(h.key));
    const leaderChanged = wantedKeys.has(leaderKey) && leaderKey !== primary.key;
    if (added.length === 0 && removed.length === 0 && !leaderChanged) return false;
    this.members = wanted;
    this.options.monitor.setHosts(wanted);
    for (const host of removed) this.drain(host.key);
    for (const host of added) {
      const pool = this.addReadPool(host);
      if (startPools) void pool.start();
    }
    logger.info(
      {
        source: view.source,
        leader: leaderKey,
        added: added.map((h) => h.key),
        removed: removed.map((h) => h.key),
      },
      'membership from Patroni changed',
    );
    if (leaderChanged) primary.switchTo(leaderKey);
    else if (primary.key !== undefined && !wantedKeys.has(primary.key)) primary.forget();
    return true;
  }

  /** Stops exporting every read pool's metrics. */
  unexportMetrics(): void {
    for (const stop of this.unexportReadPool.values()) stop();
    this.unexportReadPool.clear();
  }

  /** Closes every read pool, the draining ones included. */
  close(): Array<Promise<void>> {
    return [...[...this.readPools.values()].map((p) => p.close()), ...this.draining];
  }

  /** A read pool for a member (its metrics exported when `metrics` is set). */
  private addReadPool(host: HostTarget): ConnectionPool {
    const pool = new ConnectionPool({
      name: `read@${host.key}`,
      ...this.options.readPool,
      open: () => this.options.open(host),
      logger: this.options.poolLogger,
    });
    this.readPools.set(host.key, pool);
    const metrics = this.options.metrics;
    if (metrics)
      this.unexportReadPool.set(host.key, exportPoolMetrics(metrics, new Map([[pool.name, pool]])));
    return pool;
  }

  private drain(key: string): void {
    const pool = this.readPools.get(key);
    this.readPools.delete(key);
    this.unexportReadPool.get(key)?.();
    this.unexportReadPool.delete(key);
    if (pool) {
      const closing = pool.close();
      this.draining.add(closing);
      void closing.finally(() => this.draining.delete(closing));
    }
  }
}
