import type pg from 'pg';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';

/**
 * The server's current timeline, read over SQL with no privilege beyond connecting: on a primary
 * the timeline of the WAL it inserts (the first 8 hex digits of the current segment's name,
 * which a promotion switches at once, unlike `pg_control_checkpoint()` that waits for the next
 * checkpoint); `undefined` on a standby (it has no timeline of its own to change until promoted).
 */
const TIMELINE_SQL = `SELECT CASE WHEN pg_is_in_recovery() THEN NULL
  ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END AS tli`;

/** A read on a connection that went silent (a partitioned primary) must not stall the poll. */
const READ_TIMEOUT_MS = 5_000;

function withTimeout<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${READ_TIMEOUT_MS} ms`)), READ_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** One open session kept between reads, reopened after an error (a failover closes it). */
export class TimelineProbe {
  private client: pg.Client | undefined;

  constructor(private readonly connection: ConnectionConfig) {}

  async read(): Promise<number | undefined> {
    try {
      this.client ??= await connect(this.connection, { connectTimeoutMs: 5_000 });
      const { rows } = await withTimeout(this.client.query<{ tli: string | null }>(TIMELINE_SQL));
      const hex = rows[0]?.tli;
      return hex ? Number.parseInt(hex, 16) : undefined;
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
