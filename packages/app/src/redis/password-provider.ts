import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis';

/**
 * Gives the password to authenticate with; asked again on every (re)connect so a rotated secret
 * (`warden credentials rotate --redis …`) is picked up without a restart.
 */
export type PasswordProvider = () => Promise<string>;

/** How often a Cluster client asks again while connected (its nodes reconnect on their own). */
const CLUSTER_REFRESH_MS = 5_000;

/**
 * The last password the provider gave. A failing provider keeps the previous one: the
 * connection attempt then either still works (rotation keeps both valid for a while) or fails
 * and is retried with the client's backoff, asking the provider again.
 */
class PasswordCache {
  value: string | undefined;
  constructor(private readonly provider: PasswordProvider) {}

  async refresh(): Promise<void> {
    try {
      const password = await this.provider();
      if (typeof password === 'string' && password !== '') this.value = password;
    } catch {
      // keeps the previous password; the next (re)connect asks again
    }
  }
}

/** A standalone client that asks the provider before each connect and reconnect. */
export function rotatingRedis(options: RedisOptions, provider: PasswordProvider): Redis {
  const cache = new PasswordCache(provider);
  // ioredis reconnects by calling connect() again (after its retryStrategy delay).
  class RotatingRedis extends Redis {
    override connect(callback?: (error?: Error | null) => void): Promise<void> {
      const connecting = cache.refresh().then(() => {
        this.options.password = cache.value;
        return super.connect();
      });
      if (callback) connecting.then(() => callback(null), callback);
      return connecting;
    }

    /** The subscriber connection (pub/sub) rotates too. */
    override duplicate(override?: Partial<RedisOptions>): Redis {
      return rotatingRedis({ ...this.options, ...override }, provider);
    }
  }
  return new RotatingRedis(options);
}

/**
 * A Cluster client whose node connections take the provider's latest password. ioredis creates
 * a node's connection from `redisOptions` when it (re)joins the pool and never reconnects a lost
 * one in place, so the password is a getter read at that moment; the cache is refreshed on
 * connect, whenever a node leaves the pool, and every few seconds while connected.
 */
export function rotatingCluster(
  nodes: readonly ClusterNode[],
  options: ClusterOptions,
  provider: PasswordProvider,
): Cluster {
  const cache = new PasswordCache(provider);
  const redisOptions: RedisOptions = { ...options.redisOptions };
  Object.defineProperty(redisOptions, 'password', { get: () => cache.value, enumerable: true });
  let timer: NodeJS.Timeout | undefined;
  class RotatingCluster extends Cluster {
    override connect(): Promise<void> {
      return cache.refresh().then(() => {
        if (!timer) {
          timer = setInterval(() => void cache.refresh(), CLUSTER_REFRESH_MS);
          timer.unref();
        }
        return super.connect();
      });
    }
  }
  const cluster = new RotatingCluster([...nodes], { ...options, redisOptions, lazyConnect: true });
  cluster.on('-node', () => void cache.refresh());
  cluster.on('end', () => {
    clearInterval(timer);
    timer = undefined;
  });
  return cluster;
}
