import { DataLayerError } from '../errors.ts';
import { childLogger, silentLogger, type Logger } from '../logger.ts';
import { checkMetricsOptions, type MetricsOptions } from '../metrics/metrics-options.ts';
import { escapeGlob } from '../redis/glob.ts';
import type { RedisArg, RedisLike } from '../redis/redis-like.ts';
import type { LuaScript } from '../redis/lua-script.ts';
import { wrongTypeError, wrongTypeOf } from '../redis/wrong-type.ts';
import { decryptSessionData, encryptSessionData, SessionKeyCache } from './session-crypto.ts';
import { generateSessionId, sessionHandle } from './session-id.ts';
import { exportSessionMetrics, type SessionCounts } from './session-metrics.ts';
import {
  DESTROY,
  INDEX_ADD,
  INDEX_LIST,
  INDEX_POP,
  INDEX_REMOVE,
  INFO,
  LOAD,
  PEEK,
  SAVE,
} from './session-scripts.ts';

export interface SessionStoreOptions {
  redis: RedisLike;
  /** Default `app:sess:`. */
  prefix?: string;
  /** A session unused this long expires. Default 30 min. */
  idleTimeoutMs?: number;
  /** A session expires this long after creation, however active. Default 4 h. */
  absoluteLifetimeMs?: number;
  /**
   * Encrypt session data at rest (AES-256-GCM, key derived from the session id, which Redis
   * never sees). `salt` is an optional server-side secret mixed into the key derivation.
   */
  encryption?: boolean | { salt?: string };
  /** Largest accepted serialized session, default 64 KiB. */
  maxBytes?: number;
  logger?: Logger;
  /**
   * Opt-in: exports session operations (`warden_sessions_*`, label `store`, default the prefix)
   * to this prom-client registry until `stopMetrics()`.
   */
  metrics?: MetricsOptions;
}

/** What is known about a session without reading its data. */
export interface SessionInfo {
  /** Stable, non-secret name of the session (SHA-256 of the id); use it to revoke. */
  handle: string;
  userId: string | undefined;
  createdAt: Date;
  lastAccessAt: Date;
  /** Absolute end of life; the idle timeout or the cookie's expiry may end it sooner. */
  expiresAt: Date;
  idleTimeoutMs: number;
  /**
   * When the session's cookie expires, as the app last told the store (on the Redis clock);
   * undefined for a browser-session cookie or when never told.
   */
  cookieExpiresAt: Date | undefined;
}

export interface LoadedSession<T> {
  data: T;
  info: SessionInfo;
}

/**
 * When the session's cookie expires. A time in the past ends the session (an app that logs out by
 * expiring the cookie leaves nothing live server-side); a future one caps the session so its key
 * never outlives the cookie. `null` lifts the cap (a browser-session cookie); leaving it out keeps
 * whatever cap the session has.
 */
export type CookieExpiry = Date | number | null | undefined;

export interface SaveOptions {
  /** Indexes the session under this user for counting, listing and revoking. */
  userId?: string;
  cookieExpiresAt?: CookieExpiry;
}

export interface TouchOptions {
  cookieExpiresAt?: CookieExpiry;
}

/**
 * The two arguments the scripts take for a cookie expiry: '' keeps the stored one, '-' lifts it,
 * else the ms until it expires (on this process' clock, the one the app set the cookie by) and the
 * expiry itself. The script keeps the earlier of `now + ms` and the expiry: the first alone would
 * add the command's time in queues and on the wire, the second alone any skew of Redis' clock
 * behind this one. Undefined when the cookie has expired already.
 */
function cookieArgs(expiry: CookieExpiry): [string | number, string | number] | undefined {
  if (expiry === undefined) return ['', ''];
  if (expiry === null) return ['-', ''];
  const at = typeof expiry === 'number' ? expiry : expiry.getTime();
  if (Number.isNaN(at)) return ['-', ''];
  const remaining = at - Date.now();
  return remaining > 0 ? [remaining, at] : undefined;
}

/** How a save treats an existing or missing session (see the SAVE script). */
export type SaveMode = 'create' | 'update' | 'upsert';

/**
 * Server-side sessions in Redis with an idle timeout and an absolute lifetime, both enforced
 * atomically by Lua scripts on the Redis clock. Fails closed: when Redis cannot be reached every
 * call raises `WARDEN_E_SESSION_STORE_UNAVAILABLE`, never "no session".
 *
 * Keys: `<prefix>s:{<handle>}` (hash) per session, `<prefix>u:{<userId>}` (sorted set) per user.
 *
 * @example
 * const sessions = new SessionStore({ redis, encryption: true });
 * const { id } = await sessions.create({ cart: [] }, { userId: 'u-17' });
 * const session = await sessions.get(id); // slides the idle window
 * await sessions.revokeUser('u-17');      // logs u-17 out everywhere
 */
export class SessionStore {
  readonly prefix: string;
  readonly idleTimeoutMs: number;
  readonly absoluteLifetimeMs: number;
  readonly #redis: RedisLike;
  readonly #salt: string | undefined;
  readonly #keys: SessionKeyCache | undefined;
  readonly #maxBytes: number;
  readonly #log: Logger;
  readonly #counts: SessionCounts = { created: 0, found: 0, missing: 0, ended: 0, errors: new Map() };
  #unexport: (() => void) | undefined;

  constructor(options: SessionStoreOptions) {
    this.#redis = options.redis;
    this.prefix = options.prefix ?? 'app:sess:';
    this.idleTimeoutMs = options.idleTimeoutMs ?? 30 * 60_000;
    this.absoluteLifetimeMs = options.absoluteLifetimeMs ?? 4 * 3_600_000;
    if (!(this.idleTimeoutMs > 0) || !(this.absoluteLifetimeMs > 0)) {
      throw new DataLayerError(
        'WARDEN_E_CONFIG_INVALID',
        'sessions.idleTimeoutMs and absoluteLifetimeMs: must be > 0',
      );
    }
    const encryption = options.encryption;
    this.#salt = encryption
      ? (typeof encryption === 'object' && encryption.salt) || 'warden-session'
      : undefined;
    this.#keys = this.#salt === undefined ? undefined : new SessionKeyCache(this.#salt);
    this.#maxBytes = options.maxBytes ?? 65_536;
    this.#log = childLogger(options.logger ?? silentLogger, { component: 'sessions' });
    const metrics = options.metrics && checkMetricsOptions(options.metrics, 'sessions.metrics');
    if (metrics) this.#unexport = exportSessionMetrics(metrics, metrics.name ?? this.prefix, this.#counts);
  }

  /** Stops exporting this store's metrics (for a store replaced at runtime). Idempotent. */
  stopMetrics(): void {
    this.#unexport?.();
    this.#unexport = undefined;
  }

  /** True when session data is encrypted at rest. */
  get encrypted(): boolean {
    return this.#salt !== undefined;
  }

  /** Creates a session under a fresh unguessable id. */
  async create<T>(data: T, options: SaveOptions = {}): Promise<{ id: string; info: SessionInfo }> {
    if (cookieArgs(options.cookieExpiresAt) === undefined) {
      throw new DataLayerError(
        'WARDEN_E_SESSION_INVALID',
        'cannot create a session whose cookie has already expired',
        {
          details: { cookieExpiresAt: options.cookieExpiresAt },
        },
      );
    }
    for (;;) {
      const id = generateSessionId();
      const info = await this.save(id, data, options, 'create');
      if (info) {
        this.#counts.created++;
        return { id, info };
      }
      // a 256-bit collision: practically never, but never overwrite someone else's session
    }
  }

  /**
   * Writes a session's data. Mode `update` (default) refuses to bring back a session that
   * expired or was revoked and returns undefined; `upsert` creates it when missing. A cookie
   * expiry in the past destroys the session instead (and returns undefined).
   */
  async save<T>(
    id: string,
    data: T,
    options: SaveOptions = {},
    mode: SaveMode = 'update',
  ): Promise<SessionInfo | undefined> {
    const handle = sessionHandle(id);
    const cookie = cookieArgs(options.cookieExpiresAt);
    if (cookie === undefined) {
      await this.revoke(handle);
      return undefined;
    }
    let text = JSON.stringify(data);
    if (Buffer.byteLength(text) > this.#maxBytes) {
      throw new DataLayerError('WARDEN_E_SESSION_INVALID', `session data exceeds ${this.#maxBytes} bytes`, {
        details: { handle, bytes: Buffer.byteLength(text) },
      });
    }
    if (this.#keys !== undefined) {
      text = encryptSessionData(text, id, handle, this.#keys.salt, this.#keys.keyOf(id, handle));
    }
    const userId = options.userId ?? '';
    const reply = (await this.#run(
      'save',
      SAVE,
      [this.#sessionKey(handle)],
      [
        text,
        this.idleTimeoutMs,
        this.absoluteLifetimeMs,
        userId,
        mode,
        this.encrypted ? '1' : '0',
        ...cookie,
      ],
    )) as number[];
    if (reply[0] !== 1) return undefined;
    const expiresAt = Number(reply[3]);
    if (userId !== '' && reply[4] !== 0) {
      await this.#run('index', INDEX_ADD, [this.#userKey(userId)], [handle, expiresAt]);
    }
    return {
      handle,
      userId: userId || undefined,
      createdAt: new Date(Number(reply[1])),
      lastAccessAt: new Date(Number(reply[2])),
      expiresAt: new Date(expiresAt),
      idleTimeoutMs: this.idleTimeoutMs,
      cookieExpiresAt: reply[5] ? new Date(Number(reply[5])) : undefined,
    };
  }

  /**
   * Loads a session and (unless `touch: false`) slides its idle window. Returns undefined when
   * it does not exist or expired; raises `WARDEN_E_SESSION_INVALID` when encrypted data was
   * tampered with.
   */
  async get<T = unknown>(
    id: string,
    options: { touch?: boolean } = {},
  ): Promise<LoadedSession<T> | undefined> {
    const handle = sessionHandle(id);
    const reply = (await this.#run(
      'get',
      LOAD,
      [this.#sessionKey(handle)],
      [options.touch === false ? '0' : '1', '', ''],
    )) as string[] | null;
    if (!reply) {
      this.#counts.missing++;
      return undefined;
    }
    this.#counts.found++;
    const [stored, created, last, expires, idle, user, encrypted, cookie] = reply as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    let text = stored;
    if (encrypted === '1') {
      if (this.#keys === undefined) {
        throw new DataLayerError(
          'WARDEN_E_SESSION_INVALID',
          'session is encrypted but the store has no encryption configured',
          {
            details: { handle },
          },
        );
      }
      text = decryptSessionData(stored, id, handle, this.#keys.salt, this.#keys.keyOf(id, handle));
    }
    return {
      data: JSON.parse(text) as T,
      info: {
        handle,
        userId: user || undefined,
        createdAt: new Date(Number(created)),
        lastAccessAt: new Date(Number(last)),
        expiresAt: new Date(Number(expires)),
        idleTimeoutMs: Number(idle),
        cookieExpiresAt: cookie ? new Date(Number(cookie)) : undefined,
      },
    };
  }

  /**
   * Slides the idle window, never past the absolute lifetime or the cookie's expiry. False when
   * the session is gone, or was ended because the cookie expiry given is in the past.
   */
  async touch(id: string, options: TouchOptions = {}): Promise<boolean> {
    const handle = sessionHandle(id);
    const cookie = cookieArgs(options.cookieExpiresAt);
    if (cookie === undefined) {
      await this.revoke(handle);
      return false;
    }
    const reply = await this.#run('touch', LOAD, [this.#sessionKey(handle)], ['1', ...cookie]);
    return reply !== null;
  }

  /** Ends a session by its id. */
  async destroy(id: string): Promise<void> {
    await this.revoke(sessionHandle(id));
  }

  /** Ends a session by its handle (as listed by {@link listUser}). True when it existed. */
  async revoke(handle: string): Promise<boolean> {
    const userId = (await this.#run('revoke', DESTROY, [this.#sessionKey(handle)], [])) as string | null;
    if (userId !== null) this.#counts.ended++;
    if (userId) {
      await this.#run('revoke', INDEX_REMOVE, [this.#userKey(userId)], [handle]);
    }
    return userId !== null;
  }

  /** The live sessions of a user (stale index entries are pruned on the way). */
  async listUser(userId: string): Promise<SessionInfo[]> {
    const handles = (await this.#run('list', INDEX_LIST, [this.#userKey(userId)], [])) as string[];
    const infos = await Promise.all(
      handles.map(async (handle): Promise<SessionInfo | undefined> => {
        const h = (await this.#run('list', INFO, [this.#sessionKey(handle)], [])) as (string | null)[] | null;
        // a session re-saved under another user no longer belongs to this one
        if (!h || h[4] !== userId) return undefined;
        return {
          handle,
          userId,
          createdAt: new Date(Number(h[0])),
          lastAccessAt: new Date(Number(h[1])),
          expiresAt: new Date(Number(h[2])),
          idleTimeoutMs: Number(h[3]),
          cookieExpiresAt: h[5] ? new Date(Number(h[5])) : undefined,
        };
      }),
    );
    return infos.filter((i): i is SessionInfo => i !== undefined);
  }

  async countUser(userId: string): Promise<number> {
    return (await this.listUser(userId)).length;
  }

  /** Ends every session of a user ("log out everywhere"). Returns how many were live. */
  async revokeUser(userId: string): Promise<number> {
    const handles = (await this.#run('revokeUser', INDEX_POP, [this.#userKey(userId)], [])) as string[];
    const ended = await this.#guard('revokeUser', () =>
      this.#redis.unlink(handles.map((h) => this.#sessionKey(h))),
    );
    this.#counts.ended += ended;
    return ended;
  }

  /** Counts all sessions under the prefix (SCAN over every master: O(sessions), for dashboards). */
  async count(): Promise<number> {
    let count = 0;
    await this.#guard('count', () =>
      this.#redis.scan(`${escapeGlob(this.prefix)}s:*`, (keys) => void (count += keys.length)),
    );
    return count;
  }

  /** Handles of all sessions, for administration. */
  async handles(): Promise<string[]> {
    const out: string[] = [];
    const start = this.prefix.length + 3;
    await this.#guard('handles', () =>
      this.#redis.scan(
        `${escapeGlob(this.prefix)}s:*`,
        (keys) => void out.push(...keys.map((k) => k.slice(start, -1))),
      ),
    );
    return out;
  }

  /** Ends every session and user index under the prefix. Returns the number of keys deleted. */
  async clear(): Promise<number> {
    let deleted = 0;
    await this.#guard('clear', () =>
      this.#redis.scan(`${escapeGlob(this.prefix)}*`, async (keys) => {
        deleted += await this.#redis.unlink(keys);
      }),
    );
    return deleted;
  }

  /** Data of an unencrypted session by handle, without touching it (administration). */
  async peek<T = unknown>(handle: string): Promise<T | undefined> {
    const reply = (await this.#run('peek', PEEK, [this.#sessionKey(handle)], [])) as [string, string] | null;
    if (!reply || reply[1] === '1') return undefined;
    return JSON.parse(reply[0]) as T;
  }

  /** Reads the metadata of a session by handle (no data; encrypted data needs the id). */
  async info(handle: string): Promise<SessionInfo | undefined> {
    const h = (await this.#run('info', INFO, [this.#sessionKey(handle)], [])) as (string | null)[] | null;
    if (!h) return undefined;
    return {
      handle,
      userId: h[4] || undefined,
      createdAt: new Date(Number(h[0])),
      lastAccessAt: new Date(Number(h[1])),
      expiresAt: new Date(Number(h[2])),
      idleTimeoutMs: Number(h[3]),
      cookieExpiresAt: h[5] ? new Date(Number(h[5])) : undefined,
    };
  }

  async #run(operation: string, script: LuaScript, keys: string[], args: RedisArg[]): Promise<unknown> {
    const reply = await this.#guard(operation, () => this.#redis.eval(script, keys, args));
    const type = wrongTypeOf(reply);
    if (type !== undefined) {
      this.#log.error({ operation, key: keys[0], type }, 'session key holds another type');
      throw wrongTypeError('session', keys[0]!, type);
    }
    return reply;
  }

  async #guard<T>(operation: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      this.#counts.errors.set(operation, (this.#counts.errors.get(operation) ?? 0) + 1);
      this.#log.warn({ err: error, operation }, 'session store unavailable');
      throw new DataLayerError(
        'WARDEN_E_SESSION_STORE_UNAVAILABLE',
        `session ${operation} failed: Redis unavailable`,
        {
          cause: error,
          details: { operation },
          hint: 'Access is denied until Redis is back (sessions fail closed).',
        },
      );
    }
  }

  #sessionKey(handle: string): string {
    return `${this.prefix}s:{${handle}}`;
  }

  #userKey(userId: string): string {
    return `${this.prefix}u:{${userId}}`;
  }
}
