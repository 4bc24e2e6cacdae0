export { Cache, type CacheOptions, type CacheStats, type GetOrSetOptions } from './cache.ts';
export { jsonSerializer, type Serializer } from './serializer.ts';
export { createRedis, fromIoredis, type CreateRedisOptions, type RedisLike } from '../redis/index.ts';
