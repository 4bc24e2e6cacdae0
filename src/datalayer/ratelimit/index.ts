export { expressRateLimit, type ExpressRateLimitOptions } from './express.ts';
export { fastifyRateLimit, type FastifyRateLimitOptions } from './fastify.ts';
export { rateLimitHeaders } from './headers.ts';
export {
  RateLimiter,
  type RateLimiterOptions,
  type RateLimitResult,
  type RedisDownPolicy,
} from './rate-limiter.ts';
export { createRedis, fromIoredis, type CreateRedisOptions, type RedisLike } from '../redis/index.ts';
