/**
 * The slice of a PostgreSQL session the runner uses: a `pg.Client` is one. It must be a session
 * of its own (not a pooled connection shared with other work, not PgBouncer in transaction
 * mode): the advisory lock and `SET lock_timeout` live in the session.
 */
export interface MigrationClient {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
}
