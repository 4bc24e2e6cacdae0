import { connect } from './connect.ts';
import type { ConnectionConfig } from './connection-config.ts';

/** One replication slot as the server shows it (pg_replication_slots and its walsender). */
export interface SlotInfo {
  name: string;
  type: 'physical' | 'logical';
  temporary: boolean;
  active: boolean;
  activePid?: number;
  /** application_name of the process holding the slot (Warden's say `warden:<repository id>`). */
  holder?: string;
  /** Null once the slot is invalidated (PostgreSQL 15/16) or before it reserved WAL. */
  restartLsn?: string;
  /** reserved, extended, unreserved or lost (the slot was invalidated: its WAL is gone). */
  walStatus?: string;
  /** WAL the slot makes the server keep: current position minus restart_lsn. */
  retainedBytes?: number;
  /** Bytes that can still be written before the slot is in danger (max_slot_wal_keep_size), if limited. */
  safeWalSize?: number;
}

export interface ServerSlots {
  currentLsn: string;
  slots: SlotInfo[];
}

/** The application_name Warden's WAL connections carry: names the repository holding a slot. */
export function holderName(repositoryId: string): string {
  return `warden:${repositoryId}`;
}

/** The repository id in a holder's application_name, when it is one of Warden's. */
export function holderRepositoryId(applicationName: string | undefined): string | undefined {
  return applicationName ? /^warden:([0-9a-f]{32})$/.exec(applicationName)?.[1] : undefined;
}

interface SlotRow {
  slot_name: string;
  slot_type: 'physical' | 'logical';
  temporary: boolean;
  active: boolean;
  active_pid: number | null;
  holder: string | null;
  restart_lsn: string | null;
  wal_status: string | null;
  retained: string | null;
  safe_wal_size: string | null;
  current_lsn: string;
}

/** Reads every replication slot of the cluster over a plain SQL connection. */
export async function readSlots(connection: ConnectionConfig): Promise<ServerSlots> {
  const client = await connect(
    { ...connection, applicationName: 'warden slots' },
    { connectTimeoutMs: 10_000 },
  );
  try {
    // A standby has no current insert position: what it has replayed is its "now".
    const { rows } = await client.query<SlotRow>(
      `WITH now AS (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END AS lsn)
       SELECT s.slot_name, s.slot_type, s.temporary, s.active, s.active_pid, a.application_name AS holder,
              s.restart_lsn::text AS restart_lsn, s.wal_status,
              (now.lsn - s.restart_lsn)::text AS retained, s.safe_wal_size::text AS safe_wal_size,
              now.lsn::text AS current_lsn
         FROM now
         LEFT JOIN pg_replication_slots s ON true
         LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid
        ORDER BY s.slot_name`,
    );
    const currentLsn = rows[0]?.current_lsn ?? '0/0';
    const slots = rows
      .filter((row) => row.slot_name !== null)
      .map((row): SlotInfo => ({
        name: row.slot_name,
        type: row.slot_type,
        temporary: row.temporary,
        active: row.active,
        ...(row.active_pid !== null ? { activePid: row.active_pid } : {}),
        ...(row.holder ? { holder: row.holder } : {}),
        ...(row.restart_lsn ? { restartLsn: row.restart_lsn } : {}),
        ...(row.wal_status ? { walStatus: row.wal_status } : {}),
        ...(row.retained !== null ? { retainedBytes: Number(row.retained) } : {}),
        ...(row.safe_wal_size !== null ? { safeWalSize: Number(row.safe_wal_size) } : {}),
      }));
    return { currentLsn, slots };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** One slot by name, with the server's current position. */
export async function readSlot(
  connection: ConnectionConfig,
  name: string,
): Promise<{ currentLsn: string; slot?: SlotInfo }> {
  const { currentLsn, slots } = await readSlots(connection);
  const slot = slots.find((s) => s.name === name);
  return { currentLsn, ...(slot ? { slot } : {}) };
}
