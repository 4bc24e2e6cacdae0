/**
 * `@warden/app`: the data layer for application services — PostgreSQL pools with routing
 * (`@warden/app/db`), a Redis cache (`@warden/app/cache`), sessions (`@warden/app/sessions`,
 * `@warden/app/sessions/express`), rate limiting (`@warden/app/ratelimit`, `…/ratelimit/express`,
 * `…/ratelimit/fastify`) and the Redis adapter they share (`@warden/app/redis`). Import the entry
 * point you use: each loads only what it needs.
 *
 * This root entry holds what every part shares: the error class and the logger interface.
 */
export {
  DataLayerError,
  DATA_ERROR_CODES,
  isDataLayerError,
  toDataLayerError,
  type DataErrorCode,
  type DataLayerErrorOptions,
} from './errors.ts';
export { silentLogger, type Logger } from './logger.ts';
export type { MetricsOptions, MetricsRegistry } from './metrics/metrics-options.ts';
