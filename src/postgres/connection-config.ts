import { WardenError } from '../errors.ts';

/**
 * How Warden uses TLS towards a server (decided per host by `planTls` in tls-policy.ts):
 * - `prefer` (default; libpq's allow and prefer): on loopback or a Unix socket, TLS whenever the
 *   server offers it, verified; on any other host the same as `require`, never plaintext.
 * - `require` (libpq's require and verify-full): TLS with the certificate chain and host name
 *   verified against the system CAs plus `tlsCa`; plaintext refused.
 * - `verify-ca`: TLS with the chain verified but not the host name (warns off loopback).
 * - `disable`: plaintext (warns off loopback).
 * Verification of the chain is never switched off: give `tlsCa` for a private CA.
 */
export type TlsMode = 'disable' | 'prefer' | 'require' | 'verify-ca';

export interface ConnectionConfig {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** Inline password (URL or config). Other sources are looked up per connection: resolvePassword. */
  readonly password?: string | undefined;
  /** File whose first line is the password. */
  readonly passwordFile?: string | undefined;
  /** Program and arguments (run without a shell) that print the password on stdout's first line. */
  readonly passwordCommand?: readonly string[] | undefined;
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
  'verify-ca': 'verify-ca',
  'verify-full': 'require',
};

export function parseTlsMode(value: string, field: string): TlsMode {
  const mode = TLS_MODES[value];
  if (!mode) {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: "${value}" is not a TLS mode`, {
      hint: 'Use disable, prefer, require or verify-ca (libpq sslmode names are accepted too).',
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
  const host = decodeUrlPart(parsed.hostname, field, 'host').replace(/^\[(.*)\]$/, '$1');
  if (host.includes(',')) {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: names more than one host`, {
      hint: "Warden protects one server per cluster entry: give the primary's host.",
      details: { field },
    });
  }
  return {
    host: host || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 5432,
    user: decodeUrlPart(parsed.username, field, 'user name') || 'postgres',
    password: parsed.password ? decodeUrlPart(parsed.password, field, 'password') : undefined,
    database: decodeUrlPart(parsed.pathname.replace(/^\//, ''), field, 'database name') || 'postgres',
    tls: parseTlsMode(params.get('sslmode') ?? 'prefer', `${field} sslmode`),
    tlsCa: params.get('sslrootcert') ?? undefined,
    applicationName: 'warden',
  };
}

/**
 * Undoes percent-encoding in one part of a URL. A `%` not followed by two hex digits is refused
 * (as libpq refuses it) with a message that names the part but never shows its value.
 */
export function decodeUrlPart(text: string, field: string, part: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new WardenError(
      'WARDEN_E_CONFIG_INVALID',
      `${field}: the ${part} holds a % that is not percent-encoding`,
      {
        hint: 'Percent-encode special characters in URLs: % as %25, @ as %40, : as %3A, / as %2F.',
        details: { field, part },
      },
    );
  }
}

/** The standard libpq environment variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE). */
export function connectionFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectionConfig | undefined {
  if (!env.PGHOST && !env.PGPORT && !env.PGUSER && !env.PGDATABASE) return undefined;
  if (env.PGHOST?.includes(',')) {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', 'PGHOST: names more than one host', {
      hint: "Warden protects one server per cluster entry: give the primary's host.",
      details: { field: 'PGHOST' },
    });
  }
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
export function describeConnection(
  config: Pick<ConnectionConfig, 'host' | 'port' | 'user' | 'database'>,
): string {
  return `${config.user}@${config.host}:${config.port}/${config.database}`;
}
