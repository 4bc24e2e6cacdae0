import type pg from 'pg';
import type { Logger } from 'pino';
import { silentLogger } from '../logger.ts';
import { connect } from './connect.ts';
import type { ConnectionConfig } from './connection-config.ts';
import { sleep } from '../util/backoff.ts';

/** The slice of a SQL client the heartbeat needs (pg.Client fits). */
interface Queryable {
  query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
}

/**
 * `warden_heartbeat(id, at)`: one row Warden updates every second on the protected cluster.
 * Its value in a restore is the newest commit that survived, which is how a drill measures RPO
 * without knowing the application's tables.
 */
export async function writeHeartbeat(
  client: Queryable,
  options: { ensureTable?: boolean } = {},
): Promise<Date> {
  if (options.ensureTable !== false) await ensureHeartbeatTable(client);
  const { rows } = await client.query<{ at: Date }>(
    `INSERT INTO warden_heartbeat (id, at) VALUES (1, clock_timestamp())
     ON CONFLICT (id) DO UPDATE SET at = excluded.at RETURNING at`,
  );
  return rows[0]!.at;
}

export async function ensureHeartbeatTable(client: Queryable): Promise<void> {
  await client.query(
    'CREATE TABLE IF NOT EXISTS warden_heartbeat (id int PRIMARY KEY, at timestamptz NOT NULL)',
  );
}

/** The heartbeat in a database, or undefined when the table is not there (yet). */
export async function readHeartbeat(client: Queryable): Promise<Date | undefined> {
  const exists = await client.query<{ t: string | null }>(
    "SELECT to_regclass('warden_heartbeat')::text AS t",
  );
  if (!exists.rows[0]?.t) return undefined;
  const { rows } = await client.query<{ at: Date }>('SELECT max(at) AS at FROM warden_heartbeat');
  return rows[0]?.at ?? undefined;
}

/** Writes the heartbeat every `intervalMs` until stopped; reconnects quietly when the server is away. */
export class HeartbeatWriter {
  private readonly controller = new AbortController();
  private loop: Promise<void> | undefined;
  lastBeat: Date | undefined;
  lastError: string | undefined;

  constructor(
    private readonly connection: ConnectionConfig,
    private readonly options: { intervalMs?: number; logger?: Logger } = {},
  ) {}

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const logger = this.options.logger ?? silentLogger;
    const signal = this.controller.signal;
    let client: pg.Client | undefined;
    while (!signal.aborted) {
      try {
        if (!client) {
          client = await connect({ ...this.connection, applicationName: 'warden heartbeat' });
          await ensureHeartbeatTable(client);
        }
        this.lastBeat = await writeHeartbeat(client, { ensureTable: false });
        this.lastError = undefined;
      } catch (error) {
        if (this.lastError === undefined)
          logger.warn({ err: (error as Error).message }, 'heartbeat write failed');
        this.lastError = (error as Error).message;
        await client?.end().catch(() => undefined);
        client = undefined;
      }
      await sleep(this.options.intervalMs ?? 1000, signal).catch(() => undefined);
    }
    await client?.end().catch(() => undefined);
  }
}
