export { expressRateLimit, type ExpressRateLimitOptions } from './express.ts';
export { fastifyRateLimit, type FastifyRateLimitOptions } from './fastify.ts';
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
