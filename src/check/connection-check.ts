import { connect } from '../postgres/connect.ts';
import { describeConnection, type ConnectionConfig } from '../postgres/connection-config.ts';
import { planTls } from '../postgres/tls-policy.ts';
import { fail, failFrom, ok, warn, type CheckResult } from './check-result.ts';
import { readServerSnapshot, type ServerSnapshot } from './server-snapshot.ts';

const NAME = 'connection';
/** Warden's BASE_BACKUP syntax needs PostgreSQL 15. */
const MIN_VERSION_NUM = 150000;

/**
 * Connects as every command does (TLS decided by tls-policy.ts, password from the configured
 * source) and reads the snapshot the server checks judge. The line says whether TLS protects the
 * session and why (verified, loopback, or switched off).
 */
export async function checkConnection(
  connection: ConnectionConfig,
): Promise<{ result: CheckResult; snapshot?: ServerSnapshot }> {
  const where = describeConnection(connection);
  let snapshot: ServerSnapshot;
  try {
    const client = await connect(
      { ...connection, applicationName: 'warden check' },
      { connectTimeoutMs: 10_000 },
    );
    try {
      snapshot = await readServerSnapshot(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (error) {
    return { result: failFrom(NAME, error) };
  }
  const details = { connection: where, serverVersion: snapshot.serverVersion, tls: snapshot.tls };
  if (snapshot.serverVersionNum < MIN_VERSION_NUM) {
    return {
      snapshot,
      result: fail(
        NAME,
        'WARDEN_E_SERVER_TOO_OLD',
        `${where} runs PostgreSQL ${snapshot.serverVersion}; Warden needs 15 or newer`,
        {
          fix: 'Upgrade the server to PostgreSQL 15+.',
          details,
        },
      ),
    };
  }
  const plan = planTls(connection.host, connection.port, connection.tls, connection.tlsCa);
  const session = snapshot.tls.used ? `TLS ${snapshot.tls.version ?? ''}`.trim() : 'plaintext';
  const base = `${where} as ${snapshot.role}, PostgreSQL ${snapshot.serverVersion}, ${session}`;
  if ('warning' in plan && plan.warning) {
    return {
      snapshot,
      result: warn(NAME, `${base}: ${plan.warning.message}`, {
        fix: 'Use tls: require (sslmode=verify-full) with the CA that signed the server certificate (tlsCa / sslrootcert).',
        details,
      }),
    };
  }
  const why =
    plan.kind === 'tls'
      ? `certificate${plan.verifyHost ? ' and host name' : ''} verified`
      : snapshot.tls.used
        ? 'loopback, verified'
        : 'loopback or local socket, nobody in between';
  return { snapshot, result: ok(NAME, `${base} (${why})`, details) };
}
