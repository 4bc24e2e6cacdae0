import type pg from 'pg';
import { WardenError } from '../errors.ts';
import { quoteIdent, quoteLiteral } from '../postgres/replication-client.ts';
import type { PgRoleScheme } from './credentials-config.ts';
import { generateSecret } from './generate-secret.ts';
import { inspectRoles, lockName, stateComment } from './pg-login-roles.ts';
import { scramSha256Verifier } from './scram-verifier.ts';
import { deliverSecret, describeSink, type SecretSink } from './secret-sink.ts';

export interface PgRotationReport {
  readonly role: string;
  readonly owner: string;
  /** The login that was active before (undefined at the first rotation); its sessions and password stay. */
  readonly previous: string | undefined;
  readonly active: string;
  readonly sink: string;
  readonly rotatedAt: string;
}

/** SQLSTATE lock_not_available: lock_timeout ran out while waiting for the advisory lock. */
const LOCK_NOT_AVAILABLE = '55P03';

/**
 * Rotates one role of the alternating-users scheme. Under a session advisory lock (a second
 * rotation of the same role waits up to `lockTimeoutMs`, then fails with WARDEN_E_ROTATION_LOCKED):
 * 1. the inactive login gets a new generated password (committed: it works from now on);
 * 2. the sink receives that login and password; if it fails, nothing else changes and the
 *    active login keeps working;
 * 3. the owner role's comment records the new active login.
 * The previous login keeps its password, so its open sessions and clients that have not read
 * the new secret yet keep working until the next rotation replaces it.
 */
export async function rotatePgRole(
  client: pg.Client,
  scheme: PgRoleScheme,
  sink: SecretSink,
  options: { lockTimeoutMs: number },
): Promise<PgRotationReport> {
  await lock(client, scheme, options.lockTimeoutMs);
  try {
    const found = await inspectRoles(client, scheme);
    const missing = [scheme.owner, ...scheme.logins].filter(
      (_, i) => (i === 0 ? found.owner : found.logins[i - 1]) === undefined,
    );
    if (missing.length > 0)
      throw new WardenError(
        'WARDEN_E_ROLES_NOT_SET_UP',
        `role ${scheme.name}: ${missing.join(', ')} missing`,
        {
          hint: `Run \`warden credentials setup --role ${scheme.name}\` first (it creates the roles of the scheme).`,
          details: { missing },
        },
      );
    const previous = found.state?.active;
    const next = previous === scheme.logins[0] ? scheme.logins[1] : scheme.logins[0];
    const password = generateSecret();
    // Only the SCRAM verifier reaches the server: the password is in no statement it could log.
    await client.query(
      `ALTER ROLE ${quoteIdent(next)} PASSWORD ${quoteLiteral(scramSha256Verifier(password))}`,
    );
    await deliverSecret(sink, { user: next, password });
    const rotatedAt = new Date().toISOString();
    await client.query(
      `COMMENT ON ROLE ${quoteIdent(scheme.owner)} IS ${quoteLiteral(stateComment({ active: next, rotatedAt }))}`,
    );
    return {
      role: scheme.name,
      owner: scheme.owner,
      previous,
      active: next,
      sink: describeSink(sink),
      rotatedAt,
    };
  } finally {
    await client
      .query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [lockName(scheme)])
      .catch(() => undefined);
  }
}

async function lock(client: pg.Client, scheme: PgRoleScheme, timeoutMs: number): Promise<void> {
  await client.query(`SET lock_timeout = ${Math.max(1, Math.round(timeoutMs))}`);
  try {
    await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [lockName(scheme)]);
  } catch (error) {
    if ((error as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw error;
    throw new WardenError(
      'WARDEN_E_ROTATION_LOCKED',
      `another rotation of ${scheme.name} held the lock for ${timeoutMs / 1000} s`,
      {
        hint: 'Wait for it to finish (a killed rotation frees the lock with its connection), or raise --lock-timeout.',
        details: { role: scheme.name },
        cause: error,
      },
    );
  } finally {
    await client.query('SET lock_timeout = 0');
  }
}

/** The login the owner's comment names as active (undefined before the first rotation). */
export async function activeLogin(client: pg.Client, scheme: PgRoleScheme): Promise<string | undefined> {
  const found = await inspectRoles(client, scheme);
  if (!found.owner)
    throw new WardenError('WARDEN_E_ROLES_NOT_SET_UP', `role ${scheme.name}: ${scheme.owner} missing`, {
      hint: `Run \`warden credentials setup --role ${scheme.name}\` first.`,
      details: { missing: [scheme.owner] },
    });
  return found.state?.active;
}
