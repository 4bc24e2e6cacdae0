import { isWardenError } from '../errors.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { ReplicationClient } from '../postgres/replication-client.ts';
import { failFrom, fail, ok, skip, type CheckResult } from './check-result.ts';

const NAME = 'pg_hba-replication';

/**
 * Tries what backups and the stream do: a replication connection, then IDENTIFY_SYSTEM. The
 * server's refusal says which rule stopped it (SQLSTATE): 28000 is pg_hba.conf (no `replication`
 * line matched), 42501 the role (pg_hba.conf let it through; replication-role says why).
 */
export async function checkReplicationConnection(connection: ConnectionConfig): Promise<CheckResult> {
  let client: ReplicationClient | undefined;
  try {
    client = await ReplicationClient.connect({ ...connection, applicationName: 'warden check' });
    const identity = await client.identifySystem();
    return ok(
      NAME,
      `a replication connection is admitted (system ${identity.systemId}, timeline ${identity.timeline})`,
      {
        systemId: identity.systemId,
      },
    );
  } catch (error) {
    const sqlstate = isWardenError(error) ? error.details.sqlstate : undefined;
    if (sqlstate === '42501')
      return ok(
        NAME,
        'pg_hba.conf admits the replication connection (the role itself is refused: see replication-role)',
      );
    if (isWardenError(error, 'WARDEN_E_NO_WAL_SENDERS'))
      return skip(NAME, 'not testable: the server has no WAL sender free for it (see max_wal_senders)');
    if (sqlstate === '28000')
      return fail(
        NAME,
        'WARDEN_E_ROLE_NOT_REPLICATION',
        `pg_hba.conf has no line that admits a replication connection for ${connection.user} from here`,
        {
          fix: `Add "host replication ${connection.user} <this host's address>/32 scram-sha-256" to pg_hba.conf (before any line that rejects it), then SELECT pg_reload_conf();`,
          details: { sqlstate, user: connection.user },
        },
      );
    return failFrom(NAME, error, 'replication connection failed');
  } finally {
    await client?.close();
  }
}
