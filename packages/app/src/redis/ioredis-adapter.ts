import type { Socket } from 'node:net';
import { Cluster, Command, Redis } from 'ioredis';
import type { LuaScript } from './lua-script.ts';
import { rotatingCluster, rotatingRedis, type PasswordProvider } from './password-provider.ts';
import {
  cancellable,
  type CancellableGet,
  type MessageHandler,
  type RedisArg,
  type RedisLike,
  type SetOptions,
} from './redis-like.ts';

type Client = Redis | Cluster;

/**
 * Commands per coalesced socket write. Small enough that the server starts on a batch while the
 * client still prepares the next (for Lua-heavy traffic one write per tick left the server idle
 * half the time: the rate limiter ran at half its throughput), large enough to save most
 * system calls.
 */
const WRITE_BATCH = 8;

/**
 * Wraps an ioredis `Redis` or `Cluster` client as a {@link RedisLike}. The adapter owns the client:
 * `quit()` closes it. Nothing is sent before `connect()` or the first command.
 *
 * @example
 * import { Redis } from 'ioredis';
 * const redis = fromIoredis(new Redis({ port: 6380, lazyConnect: true, enableOfflineQueue: false }));
 * await redis.connect();
 */
export function fromIoredis(client: Client): RedisLike {
  return new IoredisAdapter(client);
}

function commandTimeoutOf(client: Client): number | undefined {
  const options = client instanceof Cluster ? client.options.redisOptions : client.options;
  return options?.commandTimeout;
}

class IoredisAdapter implements RedisLike {
  readonly isCluster: boolean;
  readonly commandTimeoutMs: number | undefined;
  readonly #client: Client;
  #subscriber: Client | undefined;
  readonly #handlers = new Map<string, Set<MessageHandler>>();
  /** Commands written into the corked socket since it was corked (0: not corked by us). */
  #batched = 0;

  constructor(client: Client) {
    this.#client = client;
    this.isCluster = client instanceof Cluster;
    this.commandTimeoutMs = commandTimeoutOf(client);
    if (client instanceof Cluster) {
      // A node that joins the pool later (failover, resharding) is connected at once too.
      client.on('+node', (node: Redis) => {
        if (client.status === 'ready') void connectNode(node);
      });
    }
  }

  async connect(): Promise<void> {
    await this.#connectClient();
    const client = this.#client;
    // ioredis Cluster opens a node's connection lazily, on the first command routed to it. Without
    // an offline queue every further command sent to that node while it is still connecting is
    // rejected as "Connection is closed", retried after retryDelayOnFailover (100 ms) on a random
    // node and redirected back with MOVED: a burst on a fresh client took hundreds of ms and ran
    // into callers' timeouts (the rate limiter then failed open). Connect every master up front.
    if (client instanceof Cluster) await Promise.all(client.nodes('master').map(connectNode));
  }

  async #connectClient(): Promise<void> {
    const client = this.#client;
    if (client.status === 'ready') return;
    if (client.status === 'wait' || client.status === 'end' || client.status === 'close') {
      await client.connect();
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const onReady = () => {
        client.off('error', onError);
        resolve();
      };
      const onError = (error: Error) => {
        client.off('ready', onReady);
        reject(error);
      };
      client.once('ready', onReady);
      client.once('error', onError);
    });
  }

  async quit(): Promise<void> {
    const clients = [this.#subscriber, this.#client].filter((c): c is Client => c !== undefined);
    this.#subscriber = undefined;
    this.#handlers.clear();
    await Promise.all(
      clients.map(async (client) => {
        if (client.status === 'end') return;
        if (client.status !== 'ready') {
          client.disconnect();
          return;
        }
        try {
          await client.quit();
        } catch {
          client.disconnect();
        }
      }),
    );
  }

  get(key: string): Promise<string | null> {
    this.#coalesceWrites();
    return this.#client.get(key);
  }

  /**
   * Corks the connection's socket so that the commands concurrent callers send in one tick leave
   * in a few writes (WRITE_BATCH commands each, the rest when the tick's work is done) instead of
   * a system call each: about 2 µs of the 5 µs a GET costs the client here. It is what ioredis'
   * auto-pipelining does, without its per-command bookkeeping. Replies are unaffected: Redis
   * answers a connection's commands in order. Standalone only: a Cluster client spreads commands
   * over a socket per node.
   */
  #coalesceWrites(): void {
    if (this.isCluster) return;
    const socket = (this.#client as Redis & { stream?: Socket }).stream;
    if (!socket || this.#client.status !== 'ready') return;
    if (this.#batched === 0) {
      socket.cork();
      process.nextTick(() => this.#flush(socket));
    }
    this.#batched += 1;
    if (this.#batched >= WRITE_BATCH) this.#flush(socket);
  }

  #flush(socket: Socket): void {
    if (this.#batched === 0) return;
    this.#batched = 0;
    socket.uncork();
  }

  /**
   * The GET `client.get` sends (same key prefix, encoding and friendly error stacks), built here
   * so its own promise can be rejected early: ioredis' command timeout does the same. With
   * auto-pipelining on, commands go through ioredis' pipeline instead: then plain `get`.
   */
  getCancellable(key: string): CancellableGet {
    const client = this.#client;
    const options = client.options as {
      keyPrefix?: string;
      showFriendlyErrorStack?: boolean;
      enableAutoPipelining?: boolean;
    };
    if (options.enableAutoPipelining) return cancellable(() => client.get(key));
    const command = new Command('get', [key], {
      replyEncoding: 'utf8',
      keyPrefix: options.keyPrefix,
      errorStack: options.showFriendlyErrorStack ? new Error() : undefined,
    } as ConstructorParameters<typeof Command>[2]);
    this.#coalesceWrites();
    void client.sendCommand(command);
    return { promise: command.promise as Promise<string | null>, cancel: command.reject };
  }

  async set(key: string, value: string, options: SetOptions = {}): Promise<boolean> {
    const args: RedisArg[] = [key, value];
    if (options.px !== undefined) args.push('PX', Math.max(1, Math.ceil(options.px)));
    if (options.nx) args.push('NX');
    this.#coalesceWrites();
    const reply = await this.#client.call('SET', ...args);
    return reply === 'OK';
  }

  async unlink(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    if (!this.isCluster) return this.#client.unlink(...keys);
    // UNLINK of several keys must stay within one slot on Cluster; one call per key keeps it
    // simple and ioredis pipelines the calls per node.
    const counts = await Promise.all(keys.map((key) => this.#client.unlink(key)));
    return counts.reduce((a, b) => a + b, 0);
  }

  async eval(script: LuaScript, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown> {
    this.#coalesceWrites();
    try {
      return await this.#client.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (error) {
      // NOSCRIPT is the error code Redis puts first in its reply; the body is then sent once.
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return this.#client.eval(script.source, keys.length, ...keys, ...args);
    }
  }

  async scan(pattern: string, onKeys: (keys: string[]) => Promise<void> | void, count = 500): Promise<void> {
    const nodes: Redis[] = this.#client instanceof Cluster ? this.#client.nodes('master') : [this.#client];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
        cursor = next;
        if (keys.length > 0) await onKeys(keys);
      } while (cursor !== '0');
    }
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.#client.publish(channel, message);
  }

  async subscribe(channel: string, handler: MessageHandler): Promise<() => Promise<void>> {
    const subscriber = this.#ensureSubscriber();
    let handlers = this.#handlers.get(channel);
    if (!handlers) {
      handlers = new Set();
      this.#handlers.set(channel, handlers);
      await subscriber.subscribe(channel);
    }
    handlers.add(handler);
    return async () => {
      const set = this.#handlers.get(channel);
      if (!set) return;
      set.delete(handler);
      if (set.size === 0) {
        this.#handlers.delete(channel);
        if (this.#subscriber?.status === 'ready') await this.#subscriber.unsubscribe(channel);
      }
    };
  }

  #ensureSubscriber(): Client {
    if (this.#subscriber) return this.#subscriber;
    // A subscriber may queue while (re)connecting: ioredis re-subscribes after a reconnect.
    const subscriber =
      this.#client instanceof Cluster
        ? this.#client.duplicate(undefined, { enableOfflineQueue: true, lazyConnect: false })
        : this.#client.duplicate({ enableOfflineQueue: true, lazyConnect: false });
    subscriber.on('error', () => {
      // reconnects on its own; a lost message only delays L1 coherence until the entry's TTL
    });
    subscriber.on('message', (channel: string, message: string) => {
      for (const handler of this.#handlers.get(channel) ?? []) handler(message);
    });
    this.#subscriber = subscriber;
    return subscriber;
  }
}

/**
 * Opens one Cluster node's connection and waits until it is ready. Never rejects: a node that
 * cannot be reached fails the commands routed to it, exactly as before.
 */
async function connectNode(node: Redis): Promise<void> {
  try {
    if (node.status === 'ready') return;
    if (node.status === 'wait') {
      await node.connect();
      return;
    }
    if (node.status !== 'connecting' && node.status !== 'connect') return;
    await new Promise<void>((resolve) => {
      const done = () => {
        node.off('ready', done);
        node.off('end', done);
        resolve();
      };
      node.once('ready', done);
      node.once('end', done);
    });
  } catch {
    // reported per command
  }
}

export interface RedisNode {
  host: string;
  port: number;
}

export interface CreateRedisOptions {
  /** One standalone server; default 127.0.0.1:6379. */
  host?: string;
  port?: number;
  /** Cluster seed nodes; when given, a Cluster client is created. */
  clusterNodes?: readonly RedisNode[];
  username?: string;
  /**
   * A fixed password, or a provider asked on every connect and reconnect (rotated passwords are
   * picked up without a restart; see docs/credential-rotation.md).
   */
  password?: string | PasswordProvider;
  /**
   * Per-command timeout. Keep it short for the cache (a slow Redis must not slow requests);
   * default 500 ms.
   */
  commandTimeoutMs?: number;
  /** Default 2000 ms. */
  connectTimeoutMs?: number;
}

/**
 * Creates an ioredis client with the data layer's defaults (lazy connect, no offline queue,
 * short command timeouts, bounded reconnect backoff) and wraps it. Use one for the cache and a
 * separate one for sessions and rate limits when they live on different servers.
 *
 * Reconnect schedule: 50 ms · 2^attempt with ±20 % jitter, capped at 2 s, forever.
 *
 * @example
 * const cacheRedis = createRedis({ clusterNodes: [{ host: '10.0.0.5', port: 7000 }] });
 * await cacheRedis.connect();
 */
export function createRedis(options: CreateRedisOptions = {}): RedisLike {
  const retry = (attempt: number) =>
    Math.round(Math.min(2000, 50 * 2 ** attempt) * (0.8 + Math.random() * 0.4));
  const provider = typeof options.password === 'function' ? options.password : undefined;
  const redisOptions = {
    username: options.username,
    password: typeof options.password === 'string' ? options.password : undefined,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.commandTimeoutMs ?? 500,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    retryStrategy: retry,
  };
  const clusterOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    clusterRetryStrategy: retry,
    slotsRefreshTimeout: options.connectTimeoutMs ?? 2000,
    redisOptions,
  };
  const standalone = { host: options.host ?? '127.0.0.1', port: options.port ?? 6379, ...redisOptions };
  let client: Client;
  if (options.clusterNodes)
    client = provider
      ? rotatingCluster(options.clusterNodes, clusterOptions, provider)
      : new Cluster([...options.clusterNodes], clusterOptions);
  else client = provider ? rotatingRedis(standalone, provider) : new Redis(standalone);
  client.on('error', () => {
    // surfaced per command; the listener keeps ioredis from printing every reconnect failure
  });
  return fromIoredis(client);
}
