import type pg from 'pg';

/** What the server-side checks need, read once over one ordinary SQL session. */
export interface ServerSnapshot {
  role: string;
  serverVersion: string;
  serverVersionNum: number;
  walLevel: string;
  maxWalSenders: number;
  maxReplicationSlots: number;
  /** max_slot_wal_keep_size in MB; -1 when unlimited. */
  maxSlotWalKeepSizeMb: number;
  /** application_name of every running WAL sender (Warden's say `warden:<repository id>`). */
  walSenders: string[];
  /** Names of the replication slots that exist. */
  slots: string[];
  /** rolreplication or rolsuper. */
  canReplicate: boolean;
  superuser: boolean;
  /** EXECUTE on pg_switch_wal() (superusers, or granted). */
  canSwitchWal: boolean;
  inRecovery: boolean;
  /** Whether this session runs over TLS, and which version. */
  tls: { used: boolean; version?: string };
  /** The server's clock_timestamp() and the local clock just before and after asking. */
  clock: { server: Date; localBefore: number; localAfter: number };
}

interface Row {
  role: string;
  version: string;
  version_num: number;
  wal_level: string;
  max_wal_senders: number;
  max_replication_slots: number;
  keep_size: string;
  senders: string[] | null;
  slots: string[] | null;
  can_replicate: boolean;
  superuser: boolean;
  can_switch: boolean;
  in_recovery: boolean;
  ssl: boolean | null;
  ssl_version: string | null;
}

/** Reads the settings, privileges and state the checks judge; every query is open to any role. */
export async function readServerSnapshot(client: pg.Client): Promise<ServerSnapshot> {
  const { rows } = await client.query<Row>(
    `SELECT current_user AS role,
            current_setting('server_version') AS version,
            current_setting('server_version_num')::int AS version_num,
            current_setting('wal_level') AS wal_level,
            current_setting('max_wal_senders')::int AS max_wal_senders,
            current_setting('max_replication_slots')::int AS max_replication_slots,
            (SELECT setting FROM pg_settings WHERE name = 'max_slot_wal_keep_size') AS keep_size,
            (SELECT array_agg(coalesce(application_name, '')) FROM pg_stat_replication) AS senders,
            (SELECT array_agg(slot_name::text) FROM pg_replication_slots) AS slots,
            coalesce((SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), false) AS can_replicate,
            coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) AS superuser,
            has_function_privilege('pg_switch_wal()', 'EXECUTE') AS can_switch,
            pg_is_in_recovery() AS in_recovery,
            (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl,
            (SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl_version`,
  );
  const row = rows[0]!;
  const localBefore = Date.now();
  const clock = await client.query<{ now: Date }>('SELECT clock_timestamp() AS now');
  const localAfter = Date.now();
  return {
    role: row.role,
    serverVersion: row.version,
    serverVersionNum: row.version_num,
    walLevel: row.wal_level,
    maxWalSenders: row.max_wal_senders,
    maxReplicationSlots: row.max_replication_slots,
    maxSlotWalKeepSizeMb: Number(row.keep_size),
    walSenders: row.senders ?? [],
    slots: row.slots ?? [],
    canReplicate: row.can_replicate,
    superuser: row.superuser,
    canSwitchWal: row.can_switch,
    inRecovery: row.in_recovery,
    tls: { used: row.ssl === true, ...(row.ssl_version ? { version: row.ssl_version } : {}) },
    clock: { server: clock.rows[0]!.now, localBefore, localAfter },
  };
}
