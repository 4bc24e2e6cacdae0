/** The workload a query belongs to; each role has its own pool (requirements §4). */
export type PoolRole = 'read' | 'write' | 'batch';

/**
 * TLS towards one host, libpq's sslmode names. Off loopback every mode but `disable` and
 * `verify-ca` means verified TLS (chain and host name); see docs/configuration.md.
 */
export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

/**
 * Where a PostgreSQL server is: a `postgres://` URL (`?sslmode=…&sslrootcert=…` honoured) or its
 * parts.
 */
export type HostInput =
  | string
  | {
      host: string;
      port?: number;
      user?: string;
      password?: string;
      database?: string;
      /** Default: the database's `tls`, else `prefer`. */
      tls?: SslMode;
      /** PEM file of a CA to trust besides the system CAs; implies verified TLS. */
      tlsCa?: string;
    };

/** A row-returning query's outcome, independent of the driver. */
export interface QueryResult<R = Record<string, unknown>> {
  readonly rows: R[];
  /** Rows affected or returned; `null` for commands that report none. */
  readonly rowCount: number | null;
  /** The command tag (`SELECT`, `INSERT`, …). */
  readonly command: string;
}

/** Anything that runs SQL: the database itself and a transaction handle. */
export interface Queryable {
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
}

/** What the router did with the statements it was given (see `Database.stats()`). */
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
  /** Write attempts repeated because the previous one provably did not run (see `failoverWaitMs`). */
  writeRetries: number;
}
