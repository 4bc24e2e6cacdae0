import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { WardenError } from '../errors.ts';
import { readPasswordFile } from '../postgres/password-source.ts';
import type { CachePlan } from './cache-config.ts';

/** The slice of a Redis client the invalidator uses (standalone or Cluster alike). */
export interface CacheRedis {
  incr(key: string): Promise<number>;
  /** Every master's SCAN of `pattern`, `onKeys` per page. */
  scan(pattern: string, count: number, onKeys: (keys: string[]) => Promise<void>): Promise<void>;
  /** UNLINK of keys that may sit in different slots. */
  unlink(keys: readonly string[]): Promise<number>;
  /** Subscribers reached (on a Cluster: those connected to the node that took the PUBLISH). */
  publish(channel: string, message: string): Promise<number>;
  set(key: string, value: string): Promise<void>;
  get(key: string): Promise<string | null>;
  quit(): Promise<void>;
}

const COMMAND_TIMEOUT_MS = 5_000;

/**
 * Connects to the cache Redis the plan names. The password is read now from its file or
 * environment variable (never from the URL, never logged); connection errors are reported as
 * `WARDEN_E_CACHE_UNAVAILABLE` with the address only.
 */
export async function connectCacheRedis(
  plan: CachePlan['redis'],
  env: NodeJS.ProcessEnv = process.env,
): Promise<CacheRedis> {
  const password = plan.passwordFile
    ? await readPasswordFile(plan.passwordFile)
    : plan.passwordEnv
      ? env[plan.passwordEnv]
      : undefined;
  if (plan.passwordEnv && password === undefined) {
    throw new WardenError(
      'WARDEN_E_SECRET_UNAVAILABLE',
      `cache.redis.passwordEnv: ${plan.passwordEnv} is not set`,
      {
        details: { field: 'cache.redis.passwordEnv' },
      },
    );
  }
  const options: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    commandTimeout: COMMAND_TIMEOUT_MS,
    connectTimeout: COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    // One attempt per call: the caller (the daemon's retry, the operator) decides when to retry.
    retryStrategy: () => null,
    ...(plan.username ? { username: plan.username } : {}),
    ...(password ? { password } : {}),
    ...(plan.tls ? { tls: { servername: plan.host } } : {}),
  };
  const where = `${plan.host}:${plan.port}`;
  const client = plan.cluster
    ? new Cluster([{ host: plan.host, port: plan.port }], {
        redisOptions: options,
        enableOfflineQueue: false,
        clusterRetryStrategy: () => null,
      })
    : new Redis({ ...options, host: plan.host, port: plan.port, db: plan.db });
  client.on('error', () => {
    // reported by the failing command
  });
  try {
    await client.connect();
    if (client instanceof Cluster) {
      await Promise.all(client.nodes('master').map((node) => node.status === 'ready' || node.connect()));
    }
  } catch (cause) {
    client.disconnect();
    throw unavailable(`cannot connect to the cache Redis at ${where}`, 'connect', cause);
  }
  return new IoredisCacheRedis(client);
}

export function unavailable(message: string, step: string, cause: unknown): WardenError {
  return new WardenError('WARDEN_E_CACHE_UNAVAILABLE', `${message}: ${(cause as Error).message ?? cause}`, {
    details: { step },
    hint: 'Check cache.redis (address, password source, TLS); the invalidation can be retried: warden cache invalidate.',
    cause,
  });
}

class IoredisCacheRedis implements CacheRedis {
  constructor(private readonly client: Redis | Cluster) {}

  incr(key: string): Promise<number> {
    return this.client.incr(key);
  }

  async scan(pattern: string, count: number, onKeys: (keys: string[]) => Promise<void>): Promise<void> {
    // A Cluster keeps each key on one master: scanning every master covers all (replicas hold copies).
    const nodes = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
        cursor = next;
        if (keys.length > 0) await onKeys(keys);
      } while (cursor !== '0');
    }
  }

  async unlink(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    if (!(this.client instanceof Cluster)) return this.client.unlink(...keys);
    // UNLINK of several keys must stay in one slot on a Cluster: one call per key, pipelined.
    const counts = await Promise.all(keys.map((key) => this.client.unlink(key)));
    return counts.reduce((sum, n) => sum + n, 0);
  }

  publish(channel: string, message: string): Promise<number> {
    return this.client.publish(channel, message);
  }

  async set(key: string, value: string): Promise<void> {
    await this.client.set(key, value);
  }

  get(key: string): Promise<string | null> {
    return this.client.get(key);
  }

  async quit(): Promise<void> {
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}
