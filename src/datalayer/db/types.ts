/** The workload a query belongs to; each role has its own pool (requirements §4). */
export type PoolRole = 'read' | 'write' | 'batch';

/** Where a PostgreSQL server is: a `postgres://` URL or its parts. */
export type HostInput =
  | string
  | {
      host: string;
      port?: number;
      user?: string;
      password?: string;
      database?: string;
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
