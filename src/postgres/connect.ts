import net from 'node:net';
import pg from 'pg';
import { WardenError } from '../errors.ts';
import { warnOnce } from '../util/security-warning.ts';
import { locateMember, type LocatedMember, type MemberWanted } from './cluster-locator.ts';
import { describeConnection, isClusterConnection, type ConnectionConfig } from './connection-config.ts';
import { passwordSourceOf, passwordSourcesHint, resolvePassword } from './password-source.ts';
import { recyclingSocket } from './recycling-socket.ts';
import { planTls } from './tls-policy.ts';
import { isTlsVerificationError, verifiedTlsOptions } from '../util/verified-tls.ts';

const SSL_REQUEST_CODE = 80877103;

/**
 * Asks the server whether it speaks TLS (the SSLRequest handshake), without authenticating.
 * `pg` has no "prefer" mode, so Warden decides before connecting.
 */
export async function serverOffersTls(
  config: Pick<ConnectionConfig, 'host' | 'port' | 'user' | 'database'>,
  timeoutMs = 10_000,
): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: config.host, port: config.port });
    socket.setTimeout(timeoutMs);
    const request = Buffer.alloc(8);
    request.writeInt32BE(8, 0);
    request.writeInt32BE(SSL_REQUEST_CODE, 4);
    socket.once('connect', () => socket.write(request));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data[0] === 0x53 /* 'S' */);
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(unreachable(config, Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })));
    });
    socket.once('error', (error) => reject(unreachable(config, error)));
    // Closed with no answer and no error (a proxy or load balancer with no server behind it
    // accepts, then hangs up): a destroyed socket never times out, so this must settle it.
    socket.once('close', () =>
      reject(
        unreachable(
          config,
          Object.assign(new Error('connection closed by the server'), { code: 'ECONNRESET' }),
        ),
      ),
    );
  });
}

export interface ConnectOptions {
  replication?: boolean;
  connectTimeoutMs?: number;
}

/**
 * Opens a connection (a plain SQL session, or a physical replication session), with TLS as
 * `planTls` decides for the host. The password is looked up only if the server asks for one.
 */
export async function connect(target: ConnectionConfig, options: ConnectOptions = {}): Promise<pg.Client> {
  // A cluster (several hosts, Patroni): the member it wants is found first, on every connection,
  // so whatever reconnects follows a switchover or a failover.
  const config = isClusterConnection(target) ? (await locate(target)).connection : target;
  const tls = await decideTls(config);
  const replication = options.replication === true;
  const client = new pg.Client({
    host: config.host,
    port: config.port,
    user: config.user,
    // A function, so pg never falls back to its own (deprecated) .pgpass lookup.
    password: async () => {
      const password = await resolvePassword(config, { replication });
      // An empty password is none (libpq's rule); pg would fail SCRAM with an error of no code.
      if (password === undefined || password === '') throw missingPassword(config);
      return password;
    },
    database: config.database,
    application_name: config.applicationName,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 15_000,
    keepAlive: true,
    ssl: tls,
    ...(options.replication ? { replication: 'true' } : {}),
    ...(options.replication && !tls ? { stream: recyclingSocket } : {}),
  } as pg.ClientConfig);
  // An idle client whose server goes away emits 'error'; the owner sees it on the next call.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => undefined);
    throw mapConnectError(config, error, options.replication === true);
  }
  return client;
}

/**
 * The member of a cluster connection that `wanted` names (default: as its target_session_attrs
 * say, the primary unless told otherwise), and the connection pinned to it.
 */
export async function locate(
  config: ConnectionConfig,
  wanted?: MemberWanted,
): Promise<{ connection: ConnectionConfig; member: LocatedMember }> {
  return locateMember(
    config,
    (pinned, timeoutMs) => connect(pinned, { connectTimeoutMs: timeoutMs }),
    wanted,
  );
}

/**
 * pg's `ssl` option for this connection, or false for plaintext. For a TLS plan the server is
 * asked first (SSLRequest) so that a server or proxy that answers "no TLS" gets a precise
 * WARDEN_E_TLS_UNAVAILABLE before any credentials are sent; pg asks again on its own socket and
 * refuses as well, so a proxy answering the two differently still gets nothing in plaintext.
 */
async function decideTls(config: ConnectionConfig): Promise<pg.ClientConfig['ssl']> {
  const plan = planTls(config.host, config.port, config.tls, config.tlsCa);
  if ('warning' in plan && plan.warning) {
    warnOnce(`${plan.warning.code}:${config.host}:${config.port}`, plan.warning.code, plan.warning.message);
  }
  if (plan.kind === 'plain') return false;
  const offered = await serverOffersTls(config);
  if (plan.kind === 'probe') return offered ? verifiedTlsOptions(true, config.tlsCa) : false;
  if (!offered) {
    throw new WardenError(
      'WARDEN_E_TLS_UNAVAILABLE',
      `TLS is required but ${describeConnection(config)} answered that it does not offer it`,
      {
        hint:
          'Turn on ssl in the server configuration. If something between Warden and the server strips ' +
          'TLS, that is what this refusal protects against. Only on a network you trust: tls: disable ' +
          '(sslmode=disable), which sends passwords and data in plaintext.',
        details: { connection: describeConnection(config) },
      },
    );
  }
  return verifiedTlsOptions(plan.verifyHost, config.tlsCa);
}

function missingPassword(config: ConnectionConfig): WardenError {
  return new WardenError(
    'WARDEN_E_AUTH_FAILED',
    `the server asks for a password for ${describeConnection(config)} and none is configured`,
    {
      hint: passwordSourcesHint(config),
      details: { connection: describeConnection(config), reason: 'no-password' },
    },
  );
}

/** Maps driver errors to catalogue codes by their structured `code` (SQLSTATE or errno). */
export function mapConnectError(config: ConnectionConfig, error: unknown, replication: boolean): WardenError {
  if (error instanceof WardenError) return error;
  const code = (error as { code?: string }).code ?? '';
  const where = describeConnection(config);
  const sqlDetails = { connection: where, sqlstate: code };
  if (['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EAI_AGAIN'].includes(code)) {
    return unreachable(config, error);
  }
  if (code === '28P01') {
    const source = passwordSourceOf(config);
    return new WardenError('WARDEN_E_AUTH_FAILED', `password authentication failed for ${where}`, {
      hint: `Check the user name, and the password from ${source}.`,
      details: { ...sqlDetails, passwordSource: source },
      cause: error,
    });
  }
  if (code === '28000') {
    return new WardenError(
      replication ? 'WARDEN_E_ROLE_NOT_REPLICATION' : 'WARDEN_E_AUTH_FAILED',
      `the server's pg_hba.conf rejects ${replication ? 'replication ' : ''}connections for ${where}`,
      {
        hint: `Add a "host ${replication ? 'replication' : 'all'} ${config.user} <address> scram-sha-256" line.`,
        details: sqlDetails,
        cause: error,
      },
    );
  }
  if (code === '42501' && replication) {
    return new WardenError(
      'WARDEN_E_ROLE_NOT_REPLICATION',
      `role "${config.user}" may not start a replication connection`,
      {
        hint: `ALTER ROLE ${config.user} REPLICATION;`,
        details: sqlDetails,
        cause: error,
      },
    );
  }
  if (code === '53300' && replication) {
    return new WardenError(
      'WARDEN_E_NO_WAL_SENDERS',
      `no WAL sender slot free on ${where} (max_wal_senders reached)`,
      {
        hint: 'Raise max_wal_senders (needs a restart) or stop other replication clients.',
        details: sqlDetails,
        cause: error,
      },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  if (/^[0-9A-Z]{5}$/.test(code)) {
    return new WardenError('WARDEN_E_SERVER_ERROR', `${where}: ${message}`, {
      details: sqlDetails,
      cause: error,
    });
  }
  if (isTlsVerificationError(error)) {
    return new WardenError('WARDEN_E_TLS_UNAVAILABLE', `TLS verification of ${where} failed: ${message}`, {
      hint: 'Give the CA that signed the server certificate (tls.ca / sslrootcert).',
      details: sqlDetails,
      cause: error,
    });
  }
  return unreachable(config, error);
}

function unreachable(
  config: Pick<ConnectionConfig, 'host' | 'port' | 'user' | 'database'>,
  error: unknown,
): WardenError {
  const code = (error as { code?: string }).code;
  return new WardenError(
    'WARDEN_E_DB_UNREACHABLE',
    `cannot reach PostgreSQL at ${config.host}:${config.port} (${code ?? 'error'})`,
    {
      hint: 'Check the host and port, and that the server is running and listening on that address.',
      details: { connection: describeConnection(config), errno: code },
      cause: error,
    },
  );
}
