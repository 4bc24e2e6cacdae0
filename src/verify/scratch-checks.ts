import type pg from 'pg';
import { WardenError } from '../errors.ts';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';

// The checks that run against the restored scratch instance once it serves.

/** A user-defined post-restore check: the first column of the first row against an expectation. */
export interface SqlCheck {
  name: string;
  sql: string;
  /** Database to run in (default: the source connection's). */
  database?: string;
  equals?: string | number | boolean;
  min?: number;
  max?: number;
}

/** Connects to the scratch instance on loopback with the source's credentials. */
export async function withScratch<T>(
  source: ConnectionConfig,
  port: number,
  database: string | undefined,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await connect({
    ...source,
    host: '127.0.0.1',
    port,
    tls: 'disable',
    database: database ?? source.database,
    applicationName: 'warden verify',
  });
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function runAmcheck(source: ConnectionConfig, port: number): Promise<string> {
  const databases = await withScratch(source, port, undefined, async (client) => {
    const { rows } = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datallowconn AND datname <> 'template0' ORDER BY datname",
    );
    const available = await client.query("SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'");
    return available.rowCount ? rows.map((r) => r.datname) : undefined;
  });
  if (!databases) return 'skipped: the amcheck extension is not installed on this server';
  let indexes = 0;
  for (const database of databases) {
    await withScratch(source, port, database, async (client) => {
      await client.query('CREATE EXTENSION IF NOT EXISTS amcheck');
      const { rows } = await client.query<{ oid: number; name: string }>(
        `SELECT c.oid::int AS oid, c.oid::regclass::text AS name
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
          WHERE am.amname = 'btree' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid`,
      );
      for (const row of rows) {
        try {
          await client.query('SELECT bt_index_check($1::oid, true)', [row.oid]);
        } catch (error) {
          throw new WardenError(
            'WARDEN_E_RESTORE_CHECK_FAILED',
            `amcheck: index ${row.name} in ${database}: ${(error as Error).message}`,
            {
              details: { database, index: row.name, sqlstate: (error as { code?: string }).code },
            },
          );
        }
      }
      indexes += rows.length;
    });
  }
  return `${indexes} B-tree index(es) in ${databases.length} database(s) intact`;
}

export async function runSqlCheck(source: ConnectionConfig, port: number, check: SqlCheck): Promise<string> {
  return withScratch(source, port, check.database, async (client) => {
    const { rows, fields } = await client.query(check.sql);
    const column = fields[0]?.name;
    const value: unknown = column ? rows[0]?.[column] : undefined;
    const shown = value === null || value === undefined ? 'NULL' : String(value);
    const failures: string[] = [];
    if (check.equals !== undefined && !sameValue(value, check.equals))
      failures.push(`expected ${String(check.equals)}`);
    const numeric = Number(value);
    if (check.min !== undefined && !(numeric >= check.min)) failures.push(`expected >= ${check.min}`);
    if (check.max !== undefined && !(numeric <= check.max)) failures.push(`expected <= ${check.max}`);
    if (failures.length) {
      throw new WardenError(
        'WARDEN_E_RESTORE_CHECK_FAILED',
        `${check.name}: got ${shown}, ${failures.join(', ')}`,
        {
          details: { check: check.name, value: shown },
        },
      );
    }
    return `got ${shown}`;
  });
}

function sameValue(actual: unknown, expected: string | number | boolean): boolean {
  if (typeof expected === 'number') return Number(actual) === expected;
  if (typeof expected === 'boolean') return actual === expected || String(actual) === String(expected);
  return String(actual) === expected;
}
