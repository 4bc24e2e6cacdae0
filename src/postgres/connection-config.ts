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
  /**
   * Every host of a cluster given as several (`postgres://h1:5432,h2:5432/db`, as libpq accepts),
   * `host`/`port` being the first. Connections go to the one that `targetSessionAttrs` wants,
   * found per connection (see cluster-locator.ts), so they follow a switchover or a failover.
   */
  readonly hosts?: readonly HostPort[] | undefined;
  /** libpq's target_session_attrs; with several hosts or Patroni the default is `read-write`. */
  readonly targetSessionAttrs?: TargetSessionAttrs | undefined;
  /** Patroni REST endpoints (`patroni: { urls }`): the authority on which member is the primary. */
  readonly patroni?: PatroniEndpoints | undefined;
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface PatroniEndpoints {
  /** Base URLs of the members' REST APIs, e.g. `http://10.0.0.1:8008`. */
  readonly urls: readonly string[];
}

export type TargetSessionAttrs =
  'any' | 'read-write' | 'primary' | 'read-only' | 'standby' | 'prefer-standby';
const TARGET_SESSION_ATTRS: readonly TargetSessionAttrs[] = [
  'any',
  'read-write',
  'primary',
  'read-only',
  'standby',
  'prefer-standby',
];

/** True when the connection names a cluster (several hosts or Patroni) rather than one server. */
export function isClusterConnection(config: ConnectionConfig): boolean {
  return (config.hosts?.length ?? 0) > 1 || (config.patroni?.urls.length ?? 0) > 0;
}

/** The same connection pinned to one member (no host list, no Patroni lookup). */
export function pinnedTo(config: ConnectionConfig, member: HostPort): ConnectionConfig {
  const { hosts: _hosts, patroni: _patroni, targetSessionAttrs: _attrs, ...rest } = config;
  return { ...rest, host: member.host, port: member.port };
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
  const { single, hosts } = splitHosts(url, field);
  let parsed: URL;
  try {
    parsed = new URL(single);
  } catch {
    throw malformedUrl(single, field);
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: URL must start with postgres://`, {
      hint: 'e.g. postgres://user@db1.example.com:5432/app',
      details: { field, part: 'scheme' },
    });
  }
  const params = parsed.searchParams;
  const host = decodeUrlPart(parsed.hostname, field, 'host').replace(/^\[(.*)\]$/, '$1');
  const attrs = params.get('target_session_attrs');
  if (attrs !== null && !TARGET_SESSION_ATTRS.includes(attrs as TargetSessionAttrs)) {
    throw new WardenError(
      'WARDEN_E_CONFIG_INVALID',
      `${field}: "${attrs}" is not a target_session_attrs value`,
      {
        hint: `Use one of ${TARGET_SESSION_ATTRS.join(', ')}.`,
        details: { field, part: 'target_session_attrs' },
      },
    );
  }
  const first = { host: host || '127.0.0.1', port: parsed.port ? Number(parsed.port) : 5432 };
  return {
    host: first.host,
    port: first.port,
    ...(hosts ? { hosts } : {}),
    ...(attrs !== null ? { targetSessionAttrs: attrs as TargetSessionAttrs } : {}),
    user: decodeUrlPart(parsed.username, field, 'user name') || 'postgres',
    password: parsed.password ? decodeUrlPart(parsed.password, field, 'password') : undefined,
    database: decodeUrlPart(parsed.pathname.replace(/^\//, ''), field, 'database name') || 'postgres',
    tls: parseTlsMode(params.get('sslmode') ?? 'prefer', `${field} sslmode`),
    tlsCa: params.get('sslrootcert') ?? undefined,
    applicationName: 'warden',
  };
}

/**
 * A multi-host URL (`postgres://u:p@h1:5432,h2,[::1]:5433/db`) as one URL of its first host,
 * plus the host list (absent for a single host). Each host is checked as a URL of its own would be.
 */
function splitHosts(url: string, field: string): { single: string; hosts?: HostPort[] } {
  const shape = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/is.exec(url);
  if (!shape) return { single: url };
  const [, scheme = '', authority = '', rest = ''] = shape;
  const at = authority.lastIndexOf('@');
  const userinfo = at >= 0 ? authority.slice(0, at + 1) : '';
  const hostList = authority.slice(at + 1);
  if (!hostList.includes(',')) return { single: url };
  const hosts = hostList.split(',').map((entry) => {
    let parsed: URL;
    try {
      parsed = new URL(`postgres://${entry}/`);
    } catch {
      throw malformedUrl(`postgres://${entry}/`, field);
    }
    const host = decodeUrlPart(parsed.hostname, field, 'host').replace(/^\[(.*)\]$/, '$1');
    if (!host) {
      throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: an empty host in the host list`, {
        hint: 'e.g. postgres://user@db1:5432,db2:5432/app?target_session_attrs=read-write',
        details: { field, part: 'host' },
      });
    }
    return { host, port: parsed.port ? Number(parsed.port) : 5432 };
  });
  return { single: `${scheme}${userinfo}${hostList.split(',')[0]}${rest}`, hosts };
}

/**
 * Names the part of a URL the WHATWG parser refused (it only says "Invalid URL"), without
 * showing the URL, which may hold a password.
 */
function malformedUrl(url: string, field: string): WardenError {
  const refuse = (part: string, problem: string, hint: string) =>
    new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: ${problem}`, { hint, details: { field, part } });
  const shape = /^([a-z][a-z0-9+.-]*):\/\/(?:[^@/?#]*@)?(\[[^\]/?#]*\]?|[^:/?#]*)(?::([^/?#]*))?/i.exec(url);
  if (!shape)
    return refuse(
      'scheme',
      'not a URL: it must start with postgres://',
      'e.g. postgres://user@db1.example.com:5432/app',
    );
  const [, , host = '', port] = shape;
  if (host.startsWith('[') && !host.endsWith(']'))
    return refuse(
      'host',
      'the host opens an IPv6 address with [ and does not close it',
      'e.g. postgres://user@[::1]:5432/app',
    );
  if (
    port !== undefined &&
    port !== '' &&
    !(/^\d+$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)
  )
    return refuse(
      'port',
      // The value stays out: a password holding "/" makes its tail look like a port.
      'the port (after the host and ":") is not a number from 1 to 65535',
      'e.g. postgres://user@db1:5432/app; a / : or @ in the password must be percent-encoded (%2F %3A %40).',
    );
  if (/[\s<>^`{|}]/.test(host))
    return refuse(
      'host',
      'the host holds a character a host name cannot hold',
      'Percent-encode special characters in the user name, password and database name; a host is a name or an address.',
    );
  return refuse(
    'url',
    'not a valid postgres:// URL',
    'e.g. postgres://user@db1.example.com:5432/app; percent-encode special characters (% as %25, @ as %40).',
  );
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
  const hostNames = (env.PGHOST ?? '127.0.0.1').split(',');
  const ports = (env.PGPORT ?? '5432').split(',').map(Number);
  if (ports.length !== 1 && ports.length !== hostNames.length) {
    throw new WardenError(
      'WARDEN_E_CONFIG_INVALID',
      'PGPORT: gives neither one port nor one per PGHOST host',
      {
        details: { field: 'PGPORT' },
      },
    );
  }
  const hosts = hostNames.map((host, i) => ({ host, port: ports[ports.length === 1 ? 0 : i]! }));
  const attrs = env.PGTARGETSESSIONATTRS;
  return {
    host: hosts[0]!.host,
    port: hosts[0]!.port,
    ...(hosts.length > 1 ? { hosts } : {}),
    ...(attrs && TARGET_SESSION_ATTRS.includes(attrs as TargetSessionAttrs)
      ? { targetSessionAttrs: attrs as TargetSessionAttrs }
      : {}),
    user: env.PGUSER ?? 'postgres',
    password: env.PGPASSWORD || undefined,
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
