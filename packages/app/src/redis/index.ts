export { CircuitBreaker, type BreakerState, type CircuitBreakerOptions } from './circuit-breaker.ts';
export { createRedis, fromIoredis, type CreateRedisOptions, type RedisNode } from './ioredis-adapter.ts';
export { LuaScript } from './lua-script.ts';
export type { MessageHandler, RedisArg, RedisLike, SetOptions } from './redis-like.ts';
export type { PasswordProvider } from './password-provider.ts';
