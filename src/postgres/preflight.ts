import { WardenError } from '../errors.ts';
import { connect } from './connect.ts';
import { describeConnection, type ConnectionConfig } from './connection-config.ts';

export interface ServerFacts {
  serverVersionNum: number;
  walLevel: string;
  maxWalSenders: number;
  canReplicate: boolean;
  /** `summarize_wal` (PostgreSQL 17+; undefined on older servers): incremental backups need it. */
  summarizeWal?: boolean;
}

const MIN_VERSION_NUM = 150000;

/** Reads the settings physical backups depend on, over an ordinary SQL connection. */
export async function readServerFacts(config: ConnectionConfig): Promise<ServerFacts> {
  const client = await connect(config);
  try {
    const { rows } = await client.query<{
      version: number;
      wal_level: string;
      senders: number;
      can_replicate: boolean;
      summarize_wal: string | null;
    }>(
      `SELECT current_setting('server_version_num')::int AS version,
              current_setting('wal_level') AS wal_level,
              current_setting('max_wal_senders')::int AS senders,
              coalesce((SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), false) AS can_replicate,
              current_setting('summarize_wal', true) AS summarize_wal`,
    );
    const row = rows[0]!;
    return {
      serverVersionNum: row.version,
      walLevel: row.wal_level,
      maxWalSenders: row.senders,
      canReplicate: row.can_replicate,
      ...(row.summarize_wal !== null ? { summarizeWal: row.summarize_wal === 'on' } : {}),
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Fails early, with the fix, when the server cannot serve physical backups and WAL streaming.
 */
export async function checkReplicationPrerequisites(config: ConnectionConfig): Promise<ServerFacts> {
  const facts = await readServerFacts(config);
  const where = describeConnection(config);
  if (facts.walLevel === 'minimal') {
    throw new WardenError(
      'WARDEN_E_WAL_LEVEL_MINIMAL',
      `${where} runs with wal_level = minimal; physical backups need replica`,
      {
        hint: 'ALTER SYSTEM SET wal_level = replica; ALTER SYSTEM SET max_wal_senders = 10; then restart PostgreSQL.',
        details: { walLevel: facts.walLevel },
      },
    );
  }
  if (facts.maxWalSenders === 0) {
    throw new WardenError(
      'WARDEN_E_NO_WAL_SENDERS',
      `${where} has max_wal_senders = 0; Warden needs a WAL sender`,
      {
        hint: 'ALTER SYSTEM SET max_wal_senders = 10; then restart PostgreSQL.',
        details: { maxWalSenders: facts.maxWalSenders },
      },
    );
  }
  if (!facts.canReplicate) {
    throw new WardenError(
      'WARDEN_E_ROLE_NOT_REPLICATION',
      `role "${config.user}" lacks the REPLICATION attribute`,
      {
        hint: `ALTER ROLE ${config.user} REPLICATION; and allow it in pg_hba.conf ("host replication ${config.user} ...").`,
        details: { role: config.user },
      },
    );
  }
  if (facts.serverVersionNum < MIN_VERSION_NUM) {
    throw new WardenError(
      'WARDEN_E_SERVER_TOO_OLD',
      `${where} runs PostgreSQL ${facts.serverVersionNum}; Warden needs 15 or newer`,
      {
        hint: 'Upgrade the server to PostgreSQL 15+.',
        details: { serverVersionNum: facts.serverVersionNum },
      },
    );
  }
  return facts;
}

/** The server's clock, so backup times and restore targets share one time base. */
export async function serverNow(config: ConnectionConfig): Promise<Date> {
  const client = await connect(config);
  try {
    const { rows } = await client.query<{ now: Date }>('SELECT clock_timestamp() AS now');
    return rows[0]!.now;
  } finally {
    await client.end().catch(() => undefined);
  }
}
