import type { LuaScript } from './lua-script.ts';

export type RedisArg = string | number | Buffer;

/** Options of a single SET. */
export interface SetOptions {
  /** Time to live in milliseconds. */
  px?: number;
  /** Only set when the key does not exist (SET NX). */
  nx?: boolean;
}

/** A GET its caller may abandon before the reply comes (see {@link RedisLike.getCancellable}). */
export interface CancellableGet {
  readonly promise: Promise<string | null>;
  /** Rejects `promise` with `error` now, unless it settled already; a late reply is dropped. */
  readonly cancel: (error: Error) => void;
}

/**
 * A cancellable GET from a plain promise: a wrapper that `cancel` can reject first. For clients
 * that cannot reject the command itself; costs a promise per call.
 */
export function cancellable(get: () => Promise<string | null>): CancellableGet {
  let cancel!: (error: Error) => void;
  const promise = new Promise<string | null>((resolve, reject) => {
    cancel = reject;
    get().then(resolve, reject);
  });
  return { promise, cancel };
}

/** Called with each message received on a subscribed channel. */
export type MessageHandler = (message: string) => void;

/**
 * The slice of a Redis client the data layer uses, so neither ioredis' nor another driver's types
 * leak through the public API. One implementation serves standalone servers and Cluster alike:
 * multi-key commands it offers (`unlink`, `scan`) work across hash slots and all masters.
 *
 * @example
 * import { Redis } from 'ioredis';
 * const redis = fromIoredis(new Redis({ lazyConnect: true }));
 * await redis.connect();
 */
export interface RedisLike {
  /** True when the server is a Redis Cluster. */
  readonly isCluster: boolean;
  /**
   * The client's own per-command timeout, when it enforces one; callers then skip their own
   * timer per call.
   */
  readonly commandTimeoutMs?: number | undefined;
  /** Opens the connection (idempotent); rejects when the server cannot be reached. */
  connect(): Promise<void>;
  /** Closes the connection(s) including subscribers (idempotent). */
  quit(): Promise<void>;
  get(key: string): Promise<string | null>;
  /**
   * A GET whose promise the caller can reject through `cancel` (a shared deadline timer does), so
   * a timeout needs no promise of the caller's around each call. Optional: a caller falls back
   * to wrapping `get`.
   */
  getCancellable?(key: string): CancellableGet;
  /** Returns false when NX was given and the key existed. */
  set(key: string, value: string, options?: SetOptions): Promise<boolean>;
  /** UNLINK of any number of keys, possibly in different slots; returns how many existed. */
  unlink(keys: readonly string[]): Promise<number>;
  /** Runs a script; all `keys` must hash to one slot on Cluster. */
  eval(script: LuaScript, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown>;
  /** SCAN of every master for keys matching `pattern`, calling `onKeys` per batch. */
  scan(pattern: string, onKeys: (keys: string[]) => Promise<void> | void, count?: number): Promise<void>;
  publish(channel: string, message: string): Promise<void>;
  /** Subscribes on a dedicated connection; the returned function unsubscribes. */
  subscribe(channel: string, handler: MessageHandler): Promise<() => Promise<void>>;
}
