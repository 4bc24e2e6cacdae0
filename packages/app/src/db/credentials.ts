import { readFile } from 'node:fs/promises';
import { DataLayerError } from '../errors.ts';
import type { Connector } from './driver.ts';

/** A login and its password, as one pair: they change together when credentials rotate. */
export interface Credentials {
  readonly user: string;
  readonly password: string;
}

/**
 * Called for every new connection (pool fill, replacement after `maxLifetime`, health checks),
 * so a rotated secret is used from the next connection on while open ones keep working. One
 * call answers both user and password: with alternating logins (`app_a`/`app_b`) two separate
 * lookups could pair one login with the other's password in the middle of a rotation. Cache
 * inside the provider if the lookup is expensive.
 */
export type CredentialsProvider = () => Promise<Credentials>;

/**
 * A provider that reads the JSON file `warden credentials rotate` writes (`{"user","password"}`,
 * replaced atomically), on every call: a mounted Kubernetes Secret or the rotation's file sink.
 *
 * @example
 * const db = createDatabase({
 *   primary: 'postgres://db1:5432/app',
 *   credentials: credentialsFromFile('/run/secrets/app-db.json'),
 *   pools: { write: { maxLifetimeMs: 15 * 60_000 } },
 * });
 */
export function credentialsFromFile(file: string): CredentialsProvider {
  return async () => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(file, 'utf8'));
    } catch (cause) {
      throw new DataLayerError('WARDEN_E_SECRET_UNAVAILABLE', `cannot read credentials from ${file}`, {
        hint: 'The file must hold the JSON object `warden credentials rotate` writes: {"user":…,"password":…}.',
        details: { file, errno: (cause as { code?: string }).code },
        cause,
      });
    }
    return checked(parsed, file);
  };
}

/** The connector with each connection's user and password taken from `provider` first. */
export function withCredentials(connect: Connector, provider: CredentialsProvider): Connector {
  return async (host, options) => {
    let credentials: Credentials;
    try {
      credentials = checked(await provider(), 'the credentials provider');
    } catch (error) {
      if (error instanceof DataLayerError) throw error;
      throw new DataLayerError('WARDEN_E_SECRET_UNAVAILABLE', 'the credentials provider failed', {
        hint: 'The provider given as `credentials` threw; the error is the cause.',
        details: { host: host.key },
        cause: error,
      });
    }
    return connect({ ...host, user: credentials.user, password: credentials.password }, options);
  };
}

function checked(value: unknown, source: string): Credentials {
  const { user, password } = (value ?? {}) as { user?: unknown; password?: unknown };
  if (typeof user !== 'string' || user === '' || typeof password !== 'string' || password === '')
    throw new DataLayerError('WARDEN_E_SECRET_UNAVAILABLE', `${source} gave no user and password`, {
      hint: 'It must give non-empty strings `user` and `password`.',
      details: { source },
    });
  return { user, password };
}
