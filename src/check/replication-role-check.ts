import { quoteIdent } from '../postgres/replication-client.ts';
import { fail, ok, type CheckResult } from './check-result.ts';
import type { ServerSnapshot } from './server-snapshot.ts';

const NAME = 'replication-role';

/** Base backups and the WAL stream connect as a replication client: the role needs REPLICATION. */
export function checkReplicationRole(snapshot: ServerSnapshot): CheckResult {
  if (snapshot.canReplicate)
    return ok(NAME, `role ${snapshot.role} ${snapshot.superuser ? 'is a superuser' : 'has REPLICATION'}`);
  return fail(
    NAME,
    'WARDEN_E_ROLE_NOT_REPLICATION',
    `role ${snapshot.role} lacks the REPLICATION attribute`,
    {
      fix: `ALTER ROLE ${quoteIdent(snapshot.role)} REPLICATION;`,
      details: { role: snapshot.role },
    },
  );
}
