import { WardenError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
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
  isConnectionFailure,
  READ_ONLY_SQLSTATE,
  sqlstateOf,
  statementError,
  serverErrorDetails,
} from './failure.ts';
import { HostMonitor } from './host-monitor.ts';
import { parseLsn, parseLsnOrNull, type Lsn } from './lsn.ts';
import { ConnectionPool, type Lease, type PoolStats } from './pool.ts';
import type { PoolRole, QueryResult, Queryable } from './types.ts';
import { WritePositions } from './write-positions.ts';

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

export interface RoutingStats {
  readsOnReplica: number;
  readsOnPrimary: number;
  /** Reads sent to the primary because no replica was healthy and within the lag bound. */
  fallbackNoReplica: number;
  /** Reads sent to the primary because no replica had replayed the session's last write yet. */
  fallbackReadYourWrites: number;
  /** Replica reads retried on the primary after the replica failed. */
  replicaFailures: number;
  failovers: number;
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
}

/** Never reached by a real server: forces a session's reads to the primary. */
const UNKNOWN_POSITION: Lsn = (1n << 64n) - 1n;
const CAPTURE_LSN_SQL = 'SELECT pg_current_wal_insert_lsn()::text AS lsn';

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
  private readonly readPools = new Map<string, ConnectionPool>();
  private readonly positions: WritePositions;
  private primaryKey: string | undefined;
  private discovering: Promise<string> | undefined;
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private computedBudget: ConnectionBudget | undefined;
  private upkeep: NodeJS.Timeout | undefined;
  private started = false;
  private roundRobin = 0;
  private readonly routing: RoutingStats = {
    readsOnReplica: 0,
    readsOnPrimary: 0,
    fallbackNoReplica: 0,
    fallbackReadYourWrites: 0,
    replicaFailures: 0,
    failovers: 0,
  };

  constructor(options: DatabaseOptions, connect: Connector = pgConnector) {
    this.config = resolveConfig(options);
    this.logger = this.config.logger.child({ component: 'warden/db' });
    this.connect = connect;
    this.connectOptions = {
      connectTimeoutMs: Math.max(...POOL_ROLES.map((r) => this.config.pools[r].connectionTimeoutMs)),
      keepAlive: true,
      keepAliveInitialDelayMs: this.config.keepAliveInitialDelayMs,
      applicationName: this.config.applicationName,
    };
    this.positions = new WritePositions(this.config.sessionTtlMs);
    this.primaryKey = this.config.initialPrimary.key;
    this.monitor = new HostMonitor({
      hosts: this.config.hosts,
      connect: this.connect,
      connectOptions: this.connectOptions,
      intervalMs: this.config.healthCheckIntervalMs,
      logger: this.logger.child({ part: 'monitor' }),
    });
    const poolLogger = this.logger.child({ part: 'pool' });
    const openPrimary = () => this.openPrimary();
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
    for (const host of this.config.hosts) {
      this.readPools.set(
        host.key,
        new ConnectionPool({
          name: `read@${host.key}`,
          ...this.config.pools.read,
          open: () => this.openHost(host),
          logger: poolLogger,
        }),
      );
    }
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
    await this.monitor.start();
    this.followMonitor();
    this.upkeep = setInterval(() => {
      this.followMonitor();
      this.positions.prune(this.replayedEverywhere());
    }, this.config.healthCheckIntervalMs);
    this.upkeep.unref();
    await Promise.all([
      this.writePool.start(),
      this.batchPool.start(),
      ...[...this.readPools.values()].map((p) => p.start()),
    ]);
    this.computedBudget = await checkBudget({
      servers: this.config.hosts.map((host) => ({
        host: host.key,
        role: host.key === this.primaryKey ? 'primary' : 'replica',
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
      return this.statement<R>(pool, sql, params, options?.session, false);
    }
    if (this.config.replicas.length > 0) return this.read<R>(sql, params, options?.session);
    this.routing.readsOnPrimary += 1;
    return this.statement<R>(undefined, sql, params, undefined, true);
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
      let open = true;
      const tx: Queryable = {
        query: async <R>(sql: string, params?: readonly unknown[]) => {
          if (!open) throw new WardenError('WARDEN_E_USAGE', 'transaction already finished');
          try {
            return await connection.query<R>(sql, params);
          } catch (error) {
            throw isConnectionFailure(error, connection) ? error : statementError(error);
          }
        },
      };
      await connection.query('BEGIN');
      let result: T;
      try {
        result = await fn(tx);
      } catch (error) {
        open = false;
        // A session whose ROLLBACK failed is in an unknown state: it must not go back to the pool.
        await connection.query('ROLLBACK').catch(() => lease.poison());
        throw error;
      }
      open = false;
      try {
        await connection.query('COMMIT');
      } catch (error) {
        if (isConnectionFailure(error, connection))
          Object.assign(error as object, { commitOutcome: 'unknown' });
        throw error;
      }
      if (options.session !== undefined && this.tracksPositions) {
        await this.capturePosition(connection, options.session);
      }
      return result;
    });
  }

  stats(): DatabaseStats {
    const read: Record<string, PoolStats> = {};
    for (const [key, pool] of this.readPools) read[key] = pool.stats();
    return {
      primary: this.primaryKey,
      pools: { write: this.writePool.stats(), batch: this.batchPool.stats(), read },
      hosts: this.config.hosts.map((h) => ({ host: h.key, ...this.monitor.describe(h.key) })),
      routing: { ...this.routing },
      sessionsTracked: this.positions.size,
    };
  }

  /** Stops health checks and closes every pool (borrowed connections get 5 s). Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.upkeep);
      await this.monitor.stop();
      await Promise.all([
        this.writePool.close(),
        this.batchPool.close(),
        ...[...this.readPools.values()].map((p) => p.close()),
      ]);
    })();
    return this.closing;
  }

  private async ready(): Promise<void> {
    if (this.closing) throw new WardenError('WARDEN_E_POOL_CLOSED', 'the database was closed');
    await this.start();
    this.started = true;
  }

  private async read<R>(
    sql: string,
    params: readonly unknown[] | undefined,
    session: string | undefined,
  ): Promise<QueryResult<R>> {
    const replica = await this.leaseReplica(sql, session);
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
        this.replicaFailed(key, error);
      }
    }
    this.routing.readsOnPrimary += 1;
    return this.statement<R>(undefined, sql, params, undefined, true);
  }

  /** A connection to a replica fit for this session's read, or undefined to use the primary. */
  private async leaseReplica(
    sql: string,
    session: string | undefined,
  ): Promise<{ lease: Lease; key: string } | undefined> {
    const candidates = this.monitor
      .all()
      .filter(
        (s) =>
          s.status === 'up' &&
          s.inRecovery === true &&
          s.key !== this.primaryKey &&
          s.lagMs !== undefined &&
          s.lagMs <= this.config.maxReplicaLagMs,
      );
    if (candidates.length === 0) {
      this.routing.fallbackNoReplica += 1;
      return undefined;
    }
    const required = session === undefined ? undefined : this.positions.required(session);
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
        if (replayed !== null) this.monitor.noteReplayed(best.key, replayed);
        if (replayed !== null && replayed >= required) return attempt;
        attempt.lease.release();
      } catch (error) {
        attempt.lease.release(true);
        this.replicaFailed(best.key, error);
      }
    }
    this.routing.fallbackReadYourWrites += 1;
    return undefined;
  }

  private async leaseFrom(key: string, sql: string): Promise<{ lease: Lease; key: string } | undefined> {
    const pool = this.readPools.get(key);
    if (!pool) return undefined;
    try {
      return { lease: pool.tryAcquire(sql) ?? (await pool.acquire(sql)), key };
    } catch (error) {
      if (error instanceof WardenError && error.code === 'WARDEN_E_POOL_TIMEOUT') throw error;
      this.replicaFailed(key, error);
      return undefined;
    }
  }

  private replicaFailed(key: string, error: unknown): void {
    this.routing.replicaFailures += 1;
    this.monitor.markDown(key, error instanceof Error ? error.message : String(error));
    this.readPools.get(key)?.evictAll();
  }

  /**
   * Runs `work` on a primary connection from `pool` (the primary's read pool when undefined).
   * Session failures become `WARDEN_E_FAILOVER` and start the search for the new primary.
   */
  private async onPrimary<T>(
    pool: ConnectionPool | undefined,
    work: (connection: DbConnection, lease: { poison(): void }) => Promise<T>,
  ): Promise<T> {
    const source = pool ?? this.primaryReadPool();
    let lease: Lease;
    try {
      lease = source.tryAcquire() ?? (await source.acquire());
    } catch (error) {
      throw this.acquireFailed(pool, error);
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
   * died idle.
   */
  private async statement<R>(
    pool: ConnectionPool | undefined,
    sql: string,
    params: readonly unknown[] | undefined,
    session: string | undefined,
    retry: boolean,
  ): Promise<QueryResult<R>> {
    const source = pool ?? this.primaryReadPool();
    let lease: Lease;
    try {
      lease = source.tryAcquire(sql) ?? (await source.acquire(sql));
    } catch (error) {
      const failure = this.acquireFailed(pool, error);
      if (retry && isFailover(failure)) return this.statement<R>(pool, sql, params, session, false);
      throw failure;
    }
    try {
      const result = await lease.connection.query<R>(sql, params);
      if (session !== undefined && this.tracksPositions)
        await this.capturePosition(lease.connection, session);
      lease.release(false);
      return result;
    } catch (error) {
      const failure = this.workFailed(lease, error, false);
      if (retry && isFailover(failure)) return this.statement<R>(pool, sql, params, session, false);
      throw failure;
    }
  }

  private acquireFailed(pool: ConnectionPool | undefined, error: unknown): unknown {
    if (pool === undefined && error instanceof WardenError && error.code === 'WARDEN_E_DB_UNREACHABLE') {
      this.primaryLost(error);
      return this.failoverError(error, undefined);
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
    this.primaryLost(error);
    return this.failoverError(error, lease.connection.host.key);
  }

  private primaryReadPool(): ConnectionPool {
    const pool = this.primaryKey === undefined ? undefined : this.readPools.get(this.primaryKey);
    if (!pool)
      throw new WardenError('WARDEN_E_NO_PRIMARY', 'no primary is known right now', {
        details: this.hostDetails(),
      });
    return pool;
  }

  private failoverError(error: unknown, host: string | undefined): WardenError {
    const details: Record<string, unknown> = { host, ...serverErrorDetails(error) };
    const outcome = (error as { commitOutcome?: unknown }).commitOutcome;
    if (outcome !== undefined) details.commitOutcome = outcome;
    const message = error instanceof Error ? error.message : String(error);
    return new WardenError('WARDEN_E_FAILOVER', `lost the primary${host ? ` ${host}` : ''}: ${message}`, {
      hint: 'Retry: the next attempt connects to whichever server is primary then.',
      details,
      cause: error,
    });
  }

  /** The primary failed or turned read-only: drop its write sessions so new ones look for the new primary. */
  private primaryLost(error: unknown): void {
    this.logger.warn(
      { host: this.primaryKey, err: error instanceof Error ? error.message : String(error) },
      'primary lost',
    );
    this.writePool.evictAll();
    this.batchPool.evictAll();
    void this.monitor.tick().then(() => this.followMonitor());
  }

  /** Adopts a primary the health checks found when the known one is gone or in recovery. */
  private followMonitor(): void {
    const current = this.primaryKey === undefined ? undefined : this.monitor.state(this.primaryKey);
    if (current?.status === 'up' && current.inRecovery === false) return;
    const found = this.monitor.all().find((s) => s.status === 'up' && s.inRecovery === false);
    if (found) this.switchPrimary(found.key);
  }

  private switchPrimary(key: string): void {
    if (key === this.primaryKey) return;
    const previous = this.primaryKey;
    this.primaryKey = key;
    this.routing.failovers += 1;
    this.logger.warn({ previous, primary: key }, 'primary changed');
    this.writePool.evictAll();
    this.batchPool.evictAll();
  }

  /**
   * Opens a session to whichever configured server accepts writes (libpq's
   * `target_session_attrs=read-write`): the known primary first, then the others.
   */
  private async openPrimary(): Promise<DbConnection> {
    const rank = (key: string) =>
      key === this.primaryKey ? 0 : this.monitor.state(key)?.inRecovery === false ? 1 : 2;
    const hosts = [...this.config.hosts].sort((a, b) => rank(a.key) - rank(b.key));
    const tried: Record<string, string> = {};
    for (const host of hosts) {
      let connection: DbConnection | undefined;
      try {
        connection = await this.openHost(host);
        const { rows } = await connection.query<{ in_recovery: boolean }>(
          'SELECT pg_is_in_recovery() AS in_recovery',
        );
        if (rows[0]?.in_recovery === false) {
          this.switchPrimary(host.key);
          return connection;
        }
        tried[host.key] = 'in recovery';
      } catch (error) {
        tried[host.key] = error instanceof WardenError ? error.code : 'failed';
      }
      await connection?.close();
    }
    throw new WardenError('WARDEN_E_NO_PRIMARY', 'no configured server accepts writes right now', {
      hint: 'A failover may be in progress; retry shortly.',
      details: { tried },
    });
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
    return this.config.replicas.length > 0;
  }

  private async capturePosition(connection: DbConnection, session: string): Promise<void> {
    try {
      const { rows } = await connection.query<{ lsn: string }>(CAPTURE_LSN_SQL);
      this.positions.remember(session, rows[0] ? parseLsn(rows[0].lsn) : UNKNOWN_POSITION);
    } catch (error) {
      // The write is done; without its position this session reads from the primary for a while.
      this.positions.remember(session, UNKNOWN_POSITION);
      this.logger.debug({ session, err: String(error) }, 'could not capture write position');
    }
  }

  private replayedEverywhere(): Lsn | undefined {
    const replicas = this.monitor.all().filter((s) => s.inRecovery === true);
    if (replicas.length === 0 || replicas.some((s) => s.status !== 'up' || s.lsn === null)) return undefined;
    return replicas.reduce<Lsn>((min, s) => (s.lsn !== null && s.lsn < min ? s.lsn : min), UNKNOWN_POSITION);
  }

  private poolRunner(key: string): Queryable {
    return { query: (sql, params) => this.onHost(key, sql, params) };
  }

  private async onHost<R>(key: string, sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    const pool = this.readPools.get(key)!;
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

  private hostDetails(): Record<string, unknown> {
    return { hosts: this.config.hosts.map((h) => ({ host: h.key, ...this.monitor.describe(h.key) })) };
  }
}

function isFailover(error: unknown): boolean {
  return error instanceof WardenError && error.code === 'WARDEN_E_FAILOVER';
}

/** SQLSTATE of a driver error or of a WardenError wrapping one. */
function sqlstateIn(error: unknown): string | undefined {
  if (error instanceof WardenError)
    return typeof error.details.sqlstate === 'string' ? error.details.sqlstate : undefined;
  return sqlstateOf(error);
}
