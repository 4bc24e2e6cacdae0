import type { AppliedMigration } from './migration-plan.ts';
import type { MigrationClient } from './migration-client.ts';

/** The history table's default name; its columns are documented (docs/migrations.md) and stable. */
export const DEFAULT_HISTORY_TABLE = 'warden_schema_history';

export async function ensureHistoryTable(client: MigrationClient, table: string): Promise<void> {
  await client.query(
    `CREATE TABLE IF NOT EXISTS ${table} (
       version bigint PRIMARY KEY,
       name text NOT NULL,
       sha256 text NOT NULL,
       applied_at timestamptz NOT NULL DEFAULT now(),
       duration_ms integer NOT NULL,
       applied_by text NOT NULL DEFAULT current_user
     )`,
  );
}

export async function readHistory(client: MigrationClient, table: string): Promise<AppliedMigration[]> {
  const { rows } = await client.query<{ version: string; name: string; sha256: string; applied_at: Date }>(
    `SELECT version::text, name, sha256, applied_at FROM ${table} ORDER BY version`,
  );
  return rows.map((r) => ({
    version: Number(r.version),
    name: r.name,
    sha256: r.sha256,
    appliedAt: r.applied_at,
  }));
}

export async function recordApplied(
  client: MigrationClient,
  table: string,
  row: { version: number; name: string; sha256: string; durationMs: number },
): Promise<void> {
  await client.query(`INSERT INTO ${table} (version, name, sha256, duration_ms) VALUES ($1, $2, $3, $4)`, [
    row.version,
    row.name,
    row.sha256,
    row.durationMs,
  ]);
}
