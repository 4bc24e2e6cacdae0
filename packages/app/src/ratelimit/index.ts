/**
 * `@warden/app/ratelimit`: GCRA rate limiting in Redis. The middleware for Express and the hook
 * for Fastify live in `@warden/app/ratelimit/express` and `@warden/app/ratelimit/fastify`.
 */
export {
  rateLimitField,
  rateLimitHeaders,
  rateLimitPolicyField,
  type RateLimitHeaderFormat,
} from './headers.ts';
export {
  RateLimiter,
  type RateLimiterOptions,
  type RateLimitPolicy,
  type RateLimitResult,
  type RedisDownPolicy,
} from './rate-limiter.ts';
export { createRedis, fromIoredis, type CreateRedisOptions, type RedisLike } from '../redis/index.ts';
