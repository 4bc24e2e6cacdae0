import { WardenError } from '../errors.ts';

/** Where a Redis node is and how to log in; `password` never appears in `display`. */
export interface RedisEndpoint {
  host: string;
  port: number;
  username?: string;
  password?: string;
  tls: boolean;
  /** `redis://host:port` without credentials, for messages, records and logs. */
  display: string;
}

/**
 * Parses `redis://[user[:password]@]host[:port]` (or `rediss://` for TLS, verified). A password
 * given separately (`WARDEN_REDIS_PASSWORD`, a file) wins over one in the URL: a URL on a command
 * line is visible to every local user.
 *
 * @example parseRedisUrl('redis://10.0.0.5:6379', { password: 's3cret' })
 */
export function parseRedisUrl(text: string, secrets: { password?: string } = {}): RedisEndpoint {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage(`"${redact(text)}" is not a redis:// URL`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:')
    throw usage(`"${redact(text)}" is not a redis:// URL`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw usage(`"${redact(text)}" names no host`);
  const port = url.port ? Number(url.port) : 6379;
  const tls = url.protocol === 'rediss:';
  const username = url.username ? decodeURIComponent(url.username) : undefined;
  const password = secrets.password ?? (url.password ? decodeURIComponent(url.password) : undefined);
  return endpointOf({
    host,
    port,
    tls,
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
  });
}

/** An endpoint at another host and port with the same credentials (a cluster node). */
export function endpointOf(fields: Omit<RedisEndpoint, 'display'>): RedisEndpoint {
  const host = fields.host.includes(':') ? `[${fields.host}]` : fields.host;
  return { ...fields, display: `${fields.tls ? 'rediss' : 'redis'}://${host}:${fields.port}` };
}

function redact(text: string): string {
  return text.replace(/\/\/[^@/]*@/, '//***@');
}

function usage(message: string): WardenError {
  return new WardenError('WARDEN_E_USAGE', message, {
    hint: 'e.g. --redis redis://10.0.0.5:6379 (password in WARDEN_REDIS_PASSWORD or --redis-password-file)',
  });
}
