import type { FastifyReply, FastifyRequest } from 'fastify';
import { toDataLayerError } from '../errors.ts';
import { rateLimitHeaders, type RateLimitHeaderFormat } from './headers.ts';
import type { RateLimiter } from './rate-limiter.ts';

export interface FastifyRateLimitOptions {
  /** The limited key; default the client IP. */
  key?: (request: FastifyRequest) => string;
  cost?: (request: FastifyRequest) => number;
  /**
   * Default `draft-11` (`RateLimit-Policy` + `RateLimit`); `legacy` for
   * `RateLimit-Limit/-Remaining/-Reset`; `both`; `none`.
   */
  headers?: RateLimitHeaderFormat;
}

/**
 * A Fastify `onRequest` hook: sets the `RateLimit-Policy` and `RateLimit` fields (or the legacy
 * ones), answers 429 with `Retry-After` on rejection, and `{ code }` with the error's status when
 * the limiter raises (fail-closed with Redis down: 503; a wrong-type key: 500).
 *
 * @example
 * app.addHook('onRequest', fastifyRateLimit(limiter, { key: (req) => req.headers['x-api-key'] as string }));
 */
export function fastifyRateLimit(
  limiter: RateLimiter,
  options: FastifyRateLimitOptions = {},
): (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined> {
  const keyOf = options.key ?? ((request: FastifyRequest) => request.ip);
  const format = options.headers ?? 'draft-11';
  return async (request, reply) => {
    let result;
    try {
      result = await limiter.consume(keyOf(request), options.cost?.(request) ?? 1);
    } catch (error) {
      const e = toDataLayerError(error);
      // returning the reply tells Fastify the hook answered the request
      return reply.code(e.httpStatus).send({ code: e.code, message: e.message });
    }
    reply.headers(rateLimitHeaders(result, format));
    if (!result.allowed) {
      return reply.code(429).send({ error: 'Too Many Requests', retryAfterMs: result.retryAfterMs });
    }
    return undefined;
  };
}
