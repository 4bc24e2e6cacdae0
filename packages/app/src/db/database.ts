import { withCredentials } from './credentials.ts';
import { DataLayerError } from '../errors.ts';
import { childLogger, type Logger } from '../logger.ts';
import { checkBudget, type ConnectionBudget } from './budget.ts';
import { POOL_ROLES, resolveConfig, type DatabaseOptions, type ResolvedConfig } from './config.ts';
import {
  pgConnector,
  type ConnectOptions,
  type Connector,
  type DbConnection,
  type HostTarget,
} from './driver.ts';
import {
  connectError,
  failoverError,
  isConnectionFailure,
  isFailover,
  neverRan,
  READ_ONLY_SQLSTATE,
  sqlstateIn,
  sqlstateOf,
  statementError,
} from './failure.ts';
import { HostMonitor } from './host-monitor.ts';
import { Membership, type LedView } from './membership.ts';
import { PrimaryTracker } from './primary-tracker.ts';
import { ReplicaChooser } from './replica-chooser.ts';
import { TopologyRefresher } from './topology-refresher.ts';
import { exportTopologyMetrics } from './topology-metrics.ts';
import { ConnectionPool, type Lease } from './pool.ts';
import { exportPoolMetrics } from './pool-metrics.ts';
import type { QueryResult, Queryable, RoutingStats } from './types.ts';
import { inTransaction } from './transaction.ts';
import { replayedEverywhere, WritePositions } from './write-positions.ts';
import type { DatabaseStats, QueryOptions, TransactionOptions } from './database-types.ts';

export type { DatabaseStats, QueryOptions, TransactionOptions } from './database-types.ts';

/**
 * The PostgreSQL side of the application data layer: pools per role, read routing with lag and
 * read-your-writes, failover. Build it with {@link createDatabase}.
 */
export class Database implements Queryable {
  private readonly config: ResolvedConfig;
  private readonly logger: Logger;
  private readonly connect: Connector;
  private readonly connectOptions: ConnectOptions;
  private readonly monitor: HostMonitor;
  private readonly writePool: ConnectionPool;
  private readonly batchPool: ConnectionPool;
  /** The members and their read pools. */
  private readonly membership: Membership;
  private readonly primary: PrimaryTracker;
  private readonly replicas: ReplicaChooser;
  private readonly refresher: TopologyRefresher | undefined;
  private readonly positions: WritePositions;
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private computedBudget: ConnectionBudget | undefined;
  private upkeep: NodeJS.Timeout | undefined;
  private started = false;
  /** Stops exporting the pools' metrics (a no-op without `metrics`). */
  private readonly unexportMetrics: () => void;
  private readonly routing: RoutingStats = {
    readsOnReplica: 0,
    readsOnPrimary: 0,
    fallbackNoReplica: 0,
    fallbackReadYourWrites: 0,
    replicaFailures: 0,
    failovers: 0,
    writeRetries: 0,
  };

  constructor(options: DatabaseOptions, connect: Connector = pgConnector) {
    this.config = resolveConfig(options);
    this.logger = childLogger(this.config.logger, { component: '@warden/app/db' });
    // Credentials asked per connection: the monitor's probes and every pool pick up a rotation.
    this.connect = this.config.credentials ? withCredentials(connect, this.config.credentials) : connect;
    this.connectOptions = {
      connectTimeoutMs: Math.max(...POOL_ROLES.map((r) => this.config.pools[r].connectionTimeoutMs)),
      keepAlive: true,
      keepAliveInitialDelayMs: this.config.keepAliveInitialDelayMs,
      applicationName: this.config.applicationName,
    };
    this.positions = new WritePositions(this.config.sessionTtlMs);
    this.monitor = new HostMonitor({
      hosts: this.config.hosts,
      connect: this.connect,
      connectOptions: this.connectOptions,
      intervalMs: this.config.healthCheckIntervalMs,
      maxLifetimeMs: shortestLifetime(POOL_ROLES.map((r) => this.config.pools[r].maxLifetimeMs)),
      logger: childLogger(this.logger, { part: 'monitor' }),
    });
    this.primary = new PrimaryTracker({
      initial: this.config.initialPrimary?.key,
      monitor: this.monitor,
      hosts: () => this.membership.hosts,
      open: (host) => this.openHost(host),
      refresh: () => void this.refresher?.refresh(),
      onSwitch: () => {
        this.routing.failovers += 1;
        this.dropWriteSessions();
      },
      dropSessions: () => this.dropWriteSessions(),
      logger: this.logger,
    });
    const poolLogger = childLogger(this.logger, { part: 'pool' });
    const openPrimary = () => this.primary.openWritable();
    this.writePool = new ConnectionPool({
      name: 'write',
      ...this.config.pools.write,
      open: openPrimary,
      logger: poolLogger,
    });
    this.batchPool = new ConnectionPool({
      name: 'batch',
      ...this.config.pools.batch,
      open: openPrimary,
      logger: poolLogger,
    });
    const metrics = this.config.metrics;
    const unexportPools = metrics
      ? exportPoolMetrics(
          metrics,
          new Map([
            ['write', this.writePool],
            ['batch', this.batchPool],
          ]),
        )
      : () => undefined;
    this.membership = new Membership({
      hosts: this.config.hosts,
      readPool: this.config.pools.read,
      open: (host) => this.openHost(host),
      memberTarget: this.config.memberTarget,
      monitor: this.monitor,
      primary: this.primary,
      metrics,
      logger: this.logger,
      poolLogger,
    });
    this.replicas = new ReplicaChooser({
      monitor: this.monitor,
      membership: this.membership,
      primary: this.primary,
      positions: this.positions,
      maxReplicaLagMs: this.config.maxReplicaLagMs,
      routing: this.routing,
    });
    const patroni = this.config.patroni;
    this.refresher = patroni
      ? new TopologyRefresher({
          source: patroni,
          intervalMs: patroni.refreshIntervalMs,
          logger: childLogger(this.logger, { part: 'patroni' }),
          apply: (view) => this.applyTopology(view),
        })
      : undefined;
    const unexportTopology =
      metrics && this.refresher ? exportTopologyMetrics(metrics, this.refresher) : () => undefined;
    this.unexportMetrics = () => {
      unexportPools();
      unexportTopology();
      this.membership.unexportMetrics();
    };
  }

  /** Follows a Patroni answer (see {@link Membership.apply}); nothing changes once closing. */
  private applyTopology(view: LedView): boolean {
    if (this.closing) return false;
    return this.membership.apply(view, this.starting !== undefined);
  }

  /**
   * Checks every server, pre-fills the pools and computes the connection budget (warning when
   * it is exceeded). Never throws for unreachable servers: queries report those. Idempotent.
   */
  start(): Promise<void> {
    this.starting ??= this.startOnce();
    return this.starting;
  }

  private async startOnce(): Promise<void> {
    // Patroni first: its answer names the members the health checks and pools are for.
    await this.refresher?.start();
    await this.monitor.start();
    this.primary.follow();
    this.upkeep = setInterval(() => {
      this.primary.follow();
      this.positions.prune(replayedEverywhere(this.monitor.all()));
    }, this.config.healthCheckIntervalMs);
    this.upkeep.unref();
    await Promise.all([
      this.writePool.start(),
      this.batchPool.start(),
      ...[...this.membership.pools()].map((p) => p.start()),
    ]);
    this.computedBudget = await checkBudget({
      servers: this.membership.hosts.map((host) => ({
        host: host.key,
        role: host.key === this.primary.key ? 'primary' : 'replica',
        runner: this.monitor.state(host.key)?.status === 'up' ? this.poolRunner(host.key) : undefined,
      })),
      pools: this.config.pools,
      appInstances: this.config.appInstances,
      logger: this.logger,
    });
  }

  /** The connection budget computed at start (undefined before `start()` finished). */
  budget(): ConnectionBudget | undefined {
    return this.computedBudget;
  }

  /**
   * Runs one statement. `write` and `batch` go to the primary; `read` goes to a healthy replica
   * within the lag bound that has replayed the session's last write, else to the primary.
   */
  query<R = Record<string, unknown>>(
    sql: string,
    params?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<QueryResult<R>> {
    // Not async: the hot path hands back the statement's own promise without another layer.
    if (!this.started || this.closing) return this.queryWhenReady<R>(sql, params, options);
    const role = options?.role ?? 'write';
    if (role !== 'read') {
      const pool = role === 'batch' ? this.batchPool : this.writePool;
      return this.statement<R>(pool, sql, params, options?.session, false, undefined);
    }
    if (this.membership.hosts.length > 1) return this.read<R>(sql, params, options?.session);
    this.routing.readsOnPrimary += 1;
    return this.statement<R>(undefined, sql, params, undefined, true, undefined);
  }

  private async queryWhenReady<R>(
    sql: string,
    params: readonly unknown[] | undefined,
    options: QueryOptions | undefined,
  ): Promise<QueryResult<R>> {
    await this.ready();
    return this.query<R>(sql, params, options);
  }

  /**
   * Runs `fn` in a transaction on the primary: COMMIT when it resolves, ROLLBACK when it throws.
   * A broken connection surfaces as `WARDEN_E_FAILOVER` (retryable; when COMMIT itself broke,
   * `details.commitOutcome` is `unknown`).
   */
  async transaction<T>(fn: (tx: Queryable) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    if (!this.started || this.closing) await this.ready();
    const pool = options.role === 'batch' ? this.batchPool : this.writePool;
    return this.onPrimary(pool, async (connection, lease) => {
      const result = await inTransaction(connection, lease, fn);
      if (options.session !== undefined && this.tracksPositions) {
        await this.positions.capture(connection, options.session, this.logger);
      }
      return result;
    });
  }

  stats(): DatabaseStats {
    return {
      primary: this.primary.key,
      pools: { write: this.writePool.stats(), batch: this.batchPool.stats(), read: this.membership.stats() },
      hosts: this.hostDetails().hosts,
      routing: { ...this.routing },
      sessionsTracked: this.positions.size,
      topology: this.refresher?.stats(),
    };
  }

  /** Stops health checks and closes every pool (borrowed connections get 5 s). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.upkeep);
      this.refresher?.stop();
      this.unexportMetrics();
      await this.monitor.stop();
      await Promise.all([this.writePool.close(), this.batchPool.close(), ...this.membership.close()]);
    })();
    return this.closing;
  }

  private async ready(): Promise<void> {
    if (this.closing) throw new DataLayerError('WARDEN_E_POOL_CLOSED', 'the database was closed');
    await this.start();
    this.started = true;
  }

  private async read<R>(
    sql: string,
    params: readonly unknown[] | undefined,
    session: string | undefined,
  ): Promise<QueryResult<R>> {
    const replica = await this.replicas.lease(sql, session);
    if (replica) {
      const { lease, key } = replica;
      try {
        const result = await lease.connection.query<R>(sql, params);
        lease.release();
        this.routing.readsOnReplica += 1;
        return result;
      } catch (error) {
        if (!isConnectionFailure(error, lease.connection)) {
          lease.release();
          throw sqlstateOf(error) ? statementError(error) : error;
        }
        lease.release(true);
        this.replicas.failed(key, error);
      }
    }
    this.routing.readsOnPrimary += 1;
    return this.statement<R>(undefined, sql, params, undefined, true, undefined);
  }

  /**
   * Runs `work` on a primary connection from `pool` (the primary's read pool when undefined).
   * Session failures become `WARDEN_E_FAILOVER` and start the search for the new primary.
   */
  private async onPrimary<T>(
    pool: ConnectionPool | undefined,
    work: (connection: DbConnection, lease: { poison(): void }) => Promise<T>,
  ): Promise<T> {
    let lease: Lease;
    // Before `work` starts nothing has run: a failover may be waited out (see failoverWaitMs).
    for (let attempt = 0, deadline: number | undefined; ; attempt += 1) {
      try {
        const source = pool ?? this.primaryReadPool();
        lease = source.tryAcquire() ?? (await source.acquire());
        break;
      } catch (error) {
        const failure = this.acquireFailed(pool, error);
        deadline ??= Date.now() + this.config.failoverWaitMs;
        if (!(await this.waitForPrimary(failure, attempt, deadline))) throw failure;
      }
    }
    let poisoned = false;
    try {
      const result = await work(lease.connection, { poison: () => (poisoned = true) });
      lease.release(poisoned);
      return result;
    } catch (error) {
      throw this.workFailed(lease, error, poisoned);
    }
  }

  /**
   * {@link onPrimary} for a single statement (plus the session's write position), without the
   * per-call closures: the path every `query()` takes. With `retry` (reads, which are safe to
   * repeat) a `WARDEN_E_FAILOVER` is retried once on a fresh session, which hides a session that
   * died idle. A failure that proves the statement never ran (see {@link neverRan}) is retried
   * until `deadline` (`failoverWaitMs` after the first failure) while a new primary is found.
   */
  private async statement<R>(
    pool: ConnectionPool | undefined,
    sql: string,
    params: readonly unknown[] | undefined,
    session: string | undefined,
    retry: boolean,
    deadline: number | undefined,
    attempt = 0,
  ): Promise<QueryResult<R>> {
    let lease: Lease;
    try {
      const source = pool ?? this.primaryReadPool();
      lease = source.tryAcquire(sql) ?? (await source.acquire(sql));
    } catch (error) {
      const failure = this.acquireFailed(pool, error);
      if (retry && isFailover(failure))
        return this.statement<R>(pool, sql, params, session, false, deadline, attempt);
      deadline ??= Date.now() + this.config.failoverWaitMs;
      if (await this.waitForPrimary(failure, attempt, deadline))
        return this.statement<R>(pool, sql, params, session, false, deadline, attempt + 1);
      throw failure;
    }
    try {
      const result = await lease.connection.query<R>(sql, params);
      if (session !== undefined && this.tracksPositions)
        await this.positions.capture(lease.connection, session, this.logger);
      lease.release(false);
      return result;
    } catch (error) {
      const failure = this.workFailed(lease, error, false);
      if (retry && isFailover(failure))
        return this.statement<R>(pool, sql, params, session, false, deadline, attempt);
      deadline ??= Date.now() + this.config.failoverWaitMs;
      if (await this.waitForPrimary(failure, attempt, deadline))
        return this.statement<R>(pool, sql, params, session, false, deadline, attempt + 1);
      throw failure;
    }
  }

  /**
   * When `failure` proves the statement never ran and `deadline` allows, waits before the next
   * attempt (while the health checks and Patroni look for the new primary) and returns true.
   * The waits: 50 ms, 100 ms, 200 ms, … capped at 1 s, each ±20 % jitter, never past `deadline`.
   */
  private async waitForPrimary(failure: unknown, attempt: number, deadline: number): Promise<boolean> {
    if (this.closing || !neverRan(failure)) return false;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    this.routing.writeRetries += 1;
    const backoff = Math.min(1_000, 50 * 2 ** attempt) * (0.8 + Math.random() * 0.4);
    void this.refresher?.refresh();
    await new Promise((resolve) => setTimeout(resolve, Math.min(left, backoff)));
    if (!this.primary.confirmed()) {
      await this.monitor.tick();
      this.primary.follow();
    }
    return !this.closing;
  }

  private acquireFailed(pool: ConnectionPool | undefined, error: unknown): unknown {
    if (pool === undefined && error instanceof DataLayerError && error.code === 'WARDEN_E_DB_UNREACHABLE') {
      this.primary.lost(error);
      return failoverError(error, undefined);
    }
    return error;
  }

  /** Releases a lease whose work failed and returns the error to raise. */
  private workFailed(lease: Lease, error: unknown, poisoned: boolean): unknown {
    const lost = isConnectionFailure(error, lease.connection) || sqlstateIn(error) === READ_ONLY_SQLSTATE;
    if (!lost) {
      lease.release(poisoned);
      return sqlstateOf(error) ? statementError(error) : error;
    }
    lease.release(true);
    this.primary.lost(error);
    return failoverError(error, lease.connection.host.key);
  }

  private primaryReadPool(): ConnectionPool {
    const key = this.primary.key;
    const pool = key === undefined ? undefined : this.membership.pool(key);
    if (!pool) {
      void this.refresher?.refresh();
      throw new DataLayerError('WARDEN_E_NO_PRIMARY', 'no primary is known right now', {
        details: this.hostDetails(),
      });
    }
    return pool;
  }

  /** Drops the write sessions: the primary changed, failed or turned read-only. */
  private dropWriteSessions(): void {
    this.writePool.evictAll();
    this.batchPool.evictAll();
  }

  private async openHost(host: HostTarget): Promise<DbConnection> {
    try {
      return await this.connect(host, this.connectOptions);
    } catch (error) {
      throw connectError(error, host.key);
    }
  }

  /**
   * Write positions only matter when reads can go to a replica: without replicas configured every
   * read runs on the primary, so writes skip the extra position query.
   */
  private get tracksPositions(): boolean {
    return this.membership.hosts.length > 1;
  }

  private poolRunner(key: string): Queryable {
    return { query: (sql, params) => this.onHost(key, sql, params) };
  }

  private async onHost<R>(key: string, sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    const pool = this.membership.pool(key)!;
    const lease = pool.tryAcquire(sql) ?? (await pool.acquire(sql));
    try {
      const result = await lease.connection.query<R>(sql, params);
      lease.release();
      return result;
    } catch (error) {
      lease.release(isConnectionFailure(error, lease.connection));
      throw error;
    }
  }

  private hostDetails(): { hosts: Array<Record<string, unknown>> } {
    return { hosts: this.membership.hosts.map((h) => ({ host: h.key, ...this.monitor.describe(h.key) })) };
  }
}

/** The shortest of the pools' connection lifetimes (0, none, when no pool retires connections). */
function shortestLifetime(lifetimes: number[]): number {
  const set = lifetimes.filter((ms) => ms > 0);
  return set.length > 0 ? Math.min(...set) : 0;
}
