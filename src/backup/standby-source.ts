import { WardenError } from '../errors.ts';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { ReplicationClient } from '../postgres/replication-client.ts';

/** What a standby must be for a base backup taken from it (`warden backup --from`). */
export interface StandbyFacts {
  systemId: string;
  /** The timeline its WAL receiver streams on. */
  timeline: number;
}

function notStreaming(why: string, details: Record<string, unknown> = {}): WardenError {
  return new WardenError('WARDEN_E_STANDBY_NOT_STREAMING', `cannot back up from this standby: ${why}`, {
    hint: 'Back up from the primary (--from primary), or repair the standby’s replication first (pg_stat_wal_receiver).',
    details,
  });
}

/**
 * Checks, before BASE_BACKUP, what PostgreSQL needs for a backup taken on a standby to be one of
 * this cluster that ends consistent on the primary's timeline: the server is in recovery, its
 * WAL receiver is `streaming` (a standby replaying only from an archive may be far behind, and
 * its backup would end there), it has the primary's system identifier, and it streams on the
 * primary's current timeline.
 */
export async function checkStandbySource(
  primary: ConnectionConfig,
  standby: ConnectionConfig,
): Promise<StandbyFacts> {
  const client = await connect({ ...standby, applicationName: 'warden backup' });
  let row: { recovery: boolean; status: string | null; tli: number | null; sysid: string } | undefined;
  try {
    ({
      rows: [row],
    } = await client.query<{ recovery: boolean; status: string | null; tli: number | null; sysid: string }>(
      `SELECT pg_is_in_recovery() AS recovery,
              (SELECT status FROM pg_stat_wal_receiver) AS status,
              (SELECT received_tli FROM pg_stat_wal_receiver) AS tli,
              (SELECT system_identifier::text FROM pg_control_system()) AS sysid`,
    ));
  } finally {
    await client.end().catch(() => undefined);
  }
  if (!row?.recovery) throw notStreaming('it is not in recovery (it is a primary)');
  if (row.status !== 'streaming')
    throw notStreaming(`its WAL receiver is ${row.status ?? 'not running'}, not streaming`, {
      status: row.status,
    });
  const identity = await primaryIdentity(primary);
  if (identity.systemId !== row.sysid)
    throw new WardenError(
      'WARDEN_E_REPO_CLUSTER_MISMATCH',
      'the standby belongs to another cluster than the primary',
      {
        details: { primarySystemId: identity.systemId, standbySystemId: row.sysid },
      },
    );
  if (row.tli !== identity.timeline)
    throw notStreaming(`it streams timeline ${row.tli}, the primary is on ${identity.timeline}`, {
      standbyTimeline: row.tli,
      primaryTimeline: identity.timeline,
    });
  return { systemId: row.sysid, timeline: identity.timeline };
}

/** The primary's system identifier and current timeline (IDENTIFY_SYSTEM). */
export async function primaryIdentity(
  primary: ConnectionConfig,
): Promise<{ systemId: string; timeline: number }> {
  const client = await ReplicationClient.connect(primary);
  try {
    const identity = await client.identifySystem();
    return { systemId: identity.systemId, timeline: identity.timeline };
  } finally {
    await client.close();
  }
}
