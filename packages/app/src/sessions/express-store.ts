import type { Request } from 'express';
import { Store, type Session, type SessionData } from 'express-session';
import { isDataLayerError } from '../errors.ts';
import { childLogger, silentLogger, type Logger } from '../logger.ts';
import { generateSessionId } from './session-id.ts';
import { SessionStore, type CookieExpiry, type SessionStoreOptions } from './session-store.ts';

/**
 * Marks the data `get` hands to express-session as loaded from Redis. A symbol, so it never
 * reaches the app's `req.session` (express-session copies enumerable string keys only), JSON or
 * the session's hash; createSession moves the mark onto the Session object itself.
 */
const LOADED = Symbol('warden.loaded');

/**
 * When the session cookie expires, to the second: express-session writes `Expires` with
 * toUTCString(), which drops the milliseconds, so the browser lets go of the cookie up to 999 ms
 * before `cookie.expires`; the store must not outlive it. Null for a browser-session cookie.
 */
function cookieExpiry(session: SessionData): CookieExpiry {
  const expires = (session.cookie as { expires?: unknown } | undefined)?.expires;
  const at =
    expires instanceof Date
      ? expires.getTime()
      : typeof expires === 'string'
        ? Date.parse(expires)
        : Number.NaN;
  return Number.isNaN(at) ? null : Math.floor(at / 1000) * 1000;
}

type Callback<T = unknown> = (err?: unknown, value?: T) => void;

export interface ExpressSessionStoreOptions extends SessionStoreOptions {
  /** The user a session belongs to, for per-user counting and revocation. Default `session.userId`. */
  userIdOf?: (session: SessionData) => string | undefined;
}

/**
 * An express-session `Store` on top of {@link SessionStore}: idle timeout and absolute lifetime
 * come from the store, the cookie's expiry caps both (an expiry in the past, the usual way to log
 * out by cookie, destroys the session in Redis), sessions are revocable per user, and a Redis
 * outage reaches express-session as an error (`WARDEN_E_SESSION_STORE_UNAVAILABLE`, fail closed).
 * Nothing of the store's own appears in `req.session`. Use `genid: generateSessionId` for 256-bit
 * ids.
 *
 * `res.clearCookie()` alone is invisible to any store (express-session does not pass it on):
 * log out with `req.session.destroy()`, or set `req.session.cookie.expires` to the past.
 *
 * `all()` lists unencrypted sessions keyed by handle; encrypted ones cannot be read without
 * their ids and are left out.
 *
 * @example
 * const store = new ExpressSessionStore({ redis, encryption: true });
 * app.use(session({ store, genid: generateSessionId, secret: process.env.COOKIE_SECRET!, resave: false, saveUninitialized: false }));
 * await store.sessions.revokeUser(req.session.userId);
 */
export class ExpressSessionStore extends Store {
  readonly sessions: SessionStore;
  readonly #userIdOf: (session: SessionData) => string | undefined;
  readonly #log: Logger;
  /** Sessions read from (or written to) Redis: their saves are updates, never resurrections. */
  readonly #loaded = new WeakSet<object>();

  constructor(options: ExpressSessionStoreOptions) {
    super();
    this.sessions = new SessionStore(options);
    this.#userIdOf =
      options.userIdOf ??
      ((session) => {
        const id = (session as { userId?: unknown }).userId;
        return typeof id === 'string' || typeof id === 'number' ? String(id) : undefined;
      });
    this.#log = childLogger(options.logger ?? silentLogger, { component: 'express-session-store' });
  }

  /** 256-bit session ids for express-session's `genid`. */
  readonly generateId = generateSessionId;

  override get(sid: string, callback: Callback<SessionData | null>): void {
    this.sessions.get<SessionData>(sid).then(
      (loaded) => {
        const data = loaded?.data;
        // not a session express-session wrote (null, a primitive): no session to inflate
        if (typeof data !== 'object' || data === null) return callback(null, null);
        const expiry = cookieExpiry(data);
        if (typeof expiry === 'number' && expiry <= Date.now()) {
          // stored before the store capped sessions by their cookie: end it as the cookie did
          return this.destroy(sid, (error) => callback(error, null));
        }
        Object.defineProperty(data, LOADED, { value: true });
        callback(null, data);
      },
      (error: unknown) => {
        if (isDataLayerError(error, 'WARDEN_E_SESSION_INVALID')) {
          // tampered or foreign data: start over with a new session instead of failing the request
          this.#log.warn({ err: error }, 'session data failed authentication; ignoring it');
          return callback(null, null);
        }
        callback(error);
      },
    );
  }

  /** express-session builds `req.session` here from what `get` returned; keep the loaded mark. */
  override createSession(req: Request, data: SessionData): Session & SessionData {
    const loaded = (data as { [LOADED]?: boolean })[LOADED] === true;
    const session = super.createSession(req, data);
    if (loaded) this.#loaded.add(session);
    return session;
  }

  /**
   * Saves the session, capped by its cookie: an expiry in the past (`cookie.expires` set to the
   * past, `cookie.maxAge = 0`) destroys it server-side, a future one bounds the key's TTL.
   */
  override set(sid: string, session: SessionData, callback?: Callback): void {
    const mode = this.#loaded.has(session) ? 'update' : 'upsert';
    const userId = this.#userIdOf(session);
    const options = { cookieExpiresAt: cookieExpiry(session), ...(userId === undefined ? {} : { userId }) };
    this.sessions.save(sid, session, options, mode).then(
      () => {
        // saved once, a later save of the same object in this request must not resurrect it
        this.#loaded.add(session);
        callback?.();
      },
      (error: unknown) => callback?.(error),
    );
  }

  /** express-session touches unmodified sessions; the cookie's expiry applies here too. */
  override touch(sid: string, session: SessionData, callback?: Callback): void {
    this.sessions.touch(sid, { cookieExpiresAt: cookieExpiry(session) }).then(
      () => callback?.(),
      (error: unknown) => callback?.(error),
    );
  }

  override destroy(sid: string, callback?: Callback): void {
    this.sessions.destroy(sid).then(
      () => callback?.(),
      (error: unknown) => callback?.(error),
    );
  }

  override length(callback: Callback<number>): void {
    this.sessions.count().then(
      (n) => callback(null, n),
      (error: unknown) => callback(error),
    );
  }

  override clear(callback?: Callback): void {
    this.sessions.clear().then(
      () => callback?.(),
      (error: unknown) => callback?.(error),
    );
  }

  override all(callback: Callback<Record<string, SessionData>>): void {
    this.#all().then(
      (all) => callback(null, all),
      (error: unknown) => callback(error),
    );
  }

  async #all(): Promise<Record<string, SessionData>> {
    const out: Record<string, SessionData> = {};
    if (this.sessions.encrypted) return out;
    for (const handle of await this.sessions.handles()) {
      const data = await this.sessions.peek<SessionData>(handle);
      if (data !== undefined) out[handle] = data;
    }
    return out;
  }
}
