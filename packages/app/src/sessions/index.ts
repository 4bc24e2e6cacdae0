/**
 * `@warden/app/sessions`: server-side sessions in Redis, framework-neutral (Fastify, Hono or
 * anything else call SessionStore directly). The express-session adapter lives in
 * `@warden/app/sessions/express`, so only services that use it load express-session.
 */
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
