import { Store, type SessionData } from 'express-session';
import { isWardenError } from '../../errors.ts';
import { silentLogger, type Logger } from '../../logger.ts';
import { generateSessionId } from './session-id.ts';
import { SessionStore, type SessionStoreOptions } from './session-store.ts';

/** Set on sessions this store loaded, so a later save never resurrects one that expired meanwhile. */
const LOADED = '__warden';

type Callback<T = unknown> = (err?: unknown, value?: T) => void;

export interface ExpressSessionStoreOptions extends SessionStoreOptions {
  /** The user a session belongs to, for per-user counting and revocation. Default `session.userId`. */
  userIdOf?: (session: SessionData) => string | undefined;
}

/**
 * An express-session `Store` on top of {@link SessionStore}: idle timeout and absolute lifetime
 * come from the store (not the cookie), sessions are revocable per user, and a Redis outage
 * reaches express-session as an error (`WARDEN_E_SESSION_STORE_UNAVAILABLE`, fail closed).
 * Use `genid: generateSessionId` for 256-bit ids.
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

  constructor(options: ExpressSessionStoreOptions) {
    super();
    this.sessions = new SessionStore(options);
    this.#userIdOf =
      options.userIdOf ??
      ((session) => {
        const id = (session as { userId?: unknown }).userId;
        return typeof id === 'string' || typeof id === 'number' ? String(id) : undefined;
      });
    this.#log = (options.logger ?? silentLogger).child({ component: 'express-session-store' });
  }

  /** 256-bit session ids for express-session's `genid`. */
  readonly generateId = generateSessionId;

  override get(sid: string, callback: Callback<SessionData | null>): void {
    this.sessions.get<SessionData>(sid).then(
      (loaded) => {
        if (!loaded) return callback(null, null);
        callback(null, { ...loaded.data, [LOADED]: loaded.info.createdAt.getTime() } as SessionData);
      },
      (error: unknown) => {
        if (isWardenError(error, 'WARDEN_E_SESSION_INVALID')) {
          // tampered or foreign data: start over with a new session instead of failing the request
          this.#log.warn({ err: error }, 'session data failed authentication; ignoring it');
          return callback(null, null);
        }
        callback(error);
      },
    );
  }

  override set(sid: string, session: SessionData, callback?: Callback): void {
    const { [LOADED]: loaded, ...data } = session as SessionData & { [LOADED]?: number };
    const mode = loaded === undefined ? 'upsert' : 'update';
    const userId = this.#userIdOf(session);
    this.sessions.save(sid, data, userId === undefined ? {} : { userId }, mode).then(
      () => callback?.(),
      (error: unknown) => callback?.(error),
    );
  }

  override touch(sid: string, _session: SessionData, callback?: Callback): void {
    this.sessions.touch(sid).then(
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
