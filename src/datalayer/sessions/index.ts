export { ExpressSessionStore, type ExpressSessionStoreOptions } from './express-store.ts';
export { generateSessionId, sessionHandle } from './session-id.ts';
export {
  SessionStore,
  type LoadedSession,
  type SaveMode,
  type SaveOptions,
  type SessionInfo,
  type SessionStoreOptions,
  type CookieExpiry,
  type TouchOptions,
} from './session-store.ts';
export { createRedis, fromIoredis, type CreateRedisOptions, type RedisLike } from '../redis/index.ts';
