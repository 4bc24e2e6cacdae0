import { WardenError } from '../errors.ts';

/**
 * How Warden uses TLS towards a server:
 * - `prefer` (default): TLS whenever the server offers it, with the certificate verified.
 * - `require`: the server must offer TLS (verified); refusing plaintext.
 * - `disable`: plaintext only (loopback development).
 * Verification is never switched off: give `tlsCa` for a private CA.
 */
export type TlsMode = 'disable' | 'prefer' | 'require';

export interface ConnectionConfig {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string | undefined;
  readonly database: string;
  readonly tls: TlsMode;
  /** PEM file of the CA that signed the server certificate. */
  readonly tlsCa?: string | undefined;
  readonly applicationName: string;
}

const TLS_MODES: Record<string, TlsMode> = {
  disable: 'disable',
  allow: 'prefer',
  prefer: 'prefer',
  require: 'require',
  'verify-ca': 'require',
  'verify-full': 'require',
};

export function parseTlsMode(value: string, field: string): TlsMode {
  const mode = TLS_MODES[value];
  if (!mode) {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: "${value}" is not a TLS mode`, {
      hint: 'Use disable, prefer or require (libpq sslmode names are accepted too).',
      details: { field },
    });
  }
  return mode;
}

/** Parses a `postgres://user:pass@host:port/db?sslmode=...` URL. */
export function connectionFromUrl(url: string, field = '--db'): ConnectionConfig {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: not a valid postgres:// URL`, {
      details: { field },
    });
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: URL must start with postgres://`, {
      details: { field },
    });
  }
  const params = parsed.searchParams;
  return {
    host: decodeURIComponent(parsed.hostname) || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 5432,
    user: decodeURIComponent(parsed.username) || 'postgres',
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')) || 'postgres',
    tls: parseTlsMode(params.get('sslmode') ?? 'prefer', `${field} sslmode`),
    tlsCa: params.get('sslrootcert') ?? undefined,
    applicationName: 'warden',
  };
}

/** The standard libpq environment variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE). */
export function connectionFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectionConfig | undefined {
  if (!env.PGHOST && !env.PGPORT && !env.PGUSER && !env.PGDATABASE) return undefined;
  return {
    host: env.PGHOST ?? '127.0.0.1',
    port: env.PGPORT ? Number(env.PGPORT) : 5432,
    user: env.PGUSER ?? 'postgres',
    password: env.PGPASSWORD,
    database: env.PGDATABASE ?? 'postgres',
    tls: parseTlsMode(env.PGSSLMODE ?? 'prefer', 'PGSSLMODE'),
    tlsCa: env.PGSSLROOTCERT,
    applicationName: 'warden',
  };
}

/** `user@host:port/db`, never the password: safe for logs and reports. */
export function describeConnection(config: ConnectionConfig): string {
  return `${config.user}@${config.host}:${config.port}/${config.database}`;
}
