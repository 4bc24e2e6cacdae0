import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';

/** The history table of `@warden/app/migrate` (docs/migrations.md documents its columns). */
export const HISTORY_TABLE = 'warden_schema_history';

export interface SchemaVersion {
  /** False when the database has no history table (no native migration ran there). */
  tracked: boolean;
  current: number;
  applied: Array<{ version: number; name: string; appliedAt: string; appliedBy: string }>;
}

/** Which version the database is on, read from the native runner's history table. */
export async function readSchemaVersion(connection: ConnectionConfig): Promise<SchemaVersion> {
  const client = await connect({ ...connection, applicationName: 'warden migrate status' });
  try {
    const { rows: found } = await client.query<{ table: string | null }>(
      'SELECT to_regclass($1)::text AS table',
      [HISTORY_TABLE],
    );
    if (!found[0]?.table) return { tracked: false, current: 0, applied: [] };
    const { rows } = await client.query<{
      version: string;
      name: string;
      applied_at: Date;
      applied_by: string;
    }>(`SELECT version::text, name, applied_at, applied_by FROM ${HISTORY_TABLE} ORDER BY version`);
    const applied = rows.map((r) => ({
      version: Number(r.version),
      name: r.name,
      appliedAt: r.applied_at.toISOString(),
      appliedBy: r.applied_by,
    }));
    return { tracked: true, current: applied.at(-1)?.version ?? 0, applied };
  } finally {
    await client.end().catch(() => undefined);
  }
}
