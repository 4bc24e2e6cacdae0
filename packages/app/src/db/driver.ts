import pg from 'pg';
import { DataLayerError } from '../errors.ts';
import { serverOffersTls } from '../postgres/ssl-request.ts';
import type { TlsMode } from '../postgres/tls-mode.ts';
import { resolvePassword } from '../postgres/password-source.ts';
import { pgpassPath } from '../postgres/pgpass.ts';
import { planTls } from '../postgres/tls-policy.ts';
import { verifiedTlsOptions } from '../postgres/verified-tls.ts';
import { warnOnce } from '../postgres/security-warning.ts';
import type { QueryResult } from './types.ts';

/** A resolved server address; `key` (`host:port`) names it in logs and stats. */
export interface HostTarget {
  readonly key: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string | undefined;
  readonly database: string;
  readonly tls: TlsMode;
  readonly tlsCa: string | undefined;
}

/**
 * The slice of a PostgreSQL driver the data layer uses. Only this file knows `pg` (its
 * {@link pgConnector} below); everything else sees this interface.
 */
export interface DbConnection {
  readonly host: HostTarget;
  /** Server process id of this session (for `pg_terminate_backend`), when the driver knows it. */
  readonly backendPid: number | undefined;
  /** True once the socket failed or the server ended the session. */
  readonly broken: boolean;
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** Called once when the connection breaks (server restart, terminate, network). */
  onBroken(listener: (error: Error | undefined) => void): void;
  close(): Promise<void>;
}

export interface ConnectOptions {
  connectTimeoutMs: number;
  keepAlive: boolean;
  keepAliveInitialDelayMs: number;
  applicationName: string;
}

export type Connector = (host: HostTarget, options: ConnectOptions) => Promise<DbConnection>;

class PgConnection implements DbConnection {
  broken = false;
  private listeners: Array<(error: Error | undefined) => void> = [];

  constructor(
    readonly host: HostTarget,
    private readonly client: pg.Client,
  ) {
    // Without an 'error' listener an idle client killed by the server would crash the process.
    client.on('error', (error) => this.markBroken(error));
    client.on('end', () => this.markBroken(undefined));
  }

  get backendPid(): number | undefined {
    return (this.client as unknown as { processID?: number }).processID ?? undefined;
  }

  query<R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    // pg's result already has `rows`, `rowCount` and `command`: handed back as is (typed as our
    // QueryResult, so no pg type leaks), which saves a promise and an object per statement.
    return this.client.query(sql, params as unknown[] | undefined) as unknown as Promise<QueryResult<R>>;
  }

  onBroken(listener: (error: Error | undefined) => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    this.broken = true;
    this.listeners = [];
    await this.client.end().catch(() => undefined);
  }

  private markBroken(error: Error | undefined): void {
    if (this.broken) return;
    this.broken = true;
    const listeners = this.listeners;
    this.listeners = [];
    for (const listener of listeners) listener(error);
  }
}

/**
 * Opens one session with `pg.Client` (TCP keepalive on, bounded connect time), TLS as `planTls`
 * decides for this host. On loopback `prefer` stays plaintext, as the data layer always did.
 */
export const pgConnector: Connector = async (host, options) => {
  const client = new pg.Client({
    ssl: await sslFor(host),
    host: host.host,
    port: host.port,
    user: host.user,
    // Looked up when the server asks: the URL's password, else PGPASSWORD, else ~/.pgpass (PGPASSFILE).
    password: async () => {
      const password = await resolvePassword(host);
      if (password !== undefined) return password;
      throw new DataLayerError(
        'WARDEN_E_AUTH_FAILED',
        `${host.key} asks for a password and none is configured`,
        {
          hint: `Give it in the host's URL or object, PGPASSWORD, or a line in ${pgpassPath()} (libpq format, mode 0600).`,
          details: { host: host.key, reason: 'no-password' },
        },
      );
    },
    database: host.database,
    keepAlive: options.keepAlive,
    keepAliveInitialDelayMillis: options.keepAliveInitialDelayMs,
    connectionTimeoutMillis: options.connectTimeoutMs,
    application_name: options.applicationName,
  });
  // Attach listeners before connecting: a failed connect may also emit 'error'.
  const connection = new PgConnection(host, client);
  try {
    await client.connect();
  } catch (error) {
    await connection.close();
    throw error;
  }
  return connection;
};

/**
 * pg's `ssl` option for one host. For a TLS plan the server is asked first, so a server or a proxy
 * that answers "no TLS" is refused with WARDEN_E_TLS_UNAVAILABLE (pg would refuse it too, but
 * with an error that carries no code).
 */
async function sslFor(host: HostTarget): Promise<pg.ClientConfig['ssl']> {
  const plan = planTls(host.host, host.port, host.tls, host.tlsCa);
  if ('warning' in plan && plan.warning) {
    warnOnce(`${plan.warning.code}:${host.key}`, plan.warning.code, plan.warning.message);
  }
  if (plan.kind !== 'tls') return false;
  if (!(await serverOffersTls(host))) {
    throw new DataLayerError(
      'WARDEN_E_TLS_UNAVAILABLE',
      `TLS is required but ${host.key} answered that it does not offer it`,
      {
        hint: 'Turn on ssl in the server configuration; only on a trusted network: tls: disable (sslmode=disable).',
        details: { host: host.key },
      },
    );
  }
  return verifiedTlsOptions(plan.verifyHost, host.tlsCa);
}
