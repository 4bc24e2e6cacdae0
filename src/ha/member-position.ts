import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';

/** A primary's current timeline and WAL position (the timeline from the WAL file name: exact after a promotion). */
export async function currentPosition(
  connection: ConnectionConfig,
): Promise<{ timeline: number; lsn: string }> {
  const client = await connect({ ...connection, applicationName: 'warden ha' }, { connectTimeoutMs: 5_000 });
  try {
    const { rows } = await client.query<{ lsn: string; timeline: number }>(
      `SELECT pg_current_wal_lsn()::text AS lsn,
              ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS timeline`,
    );
    return { lsn: rows[0]!.lsn, timeline: Number(rows[0]!.timeline) };
  } finally {
    await client.end().catch(() => undefined);
  }
}
