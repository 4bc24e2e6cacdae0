import type { FastifyReply, FastifyRequest } from 'fastify';
import { toWardenError } from '../../errors.ts';
import { rateLimitHeaders } from './headers.ts';
import type { RateLimiter } from './rate-limiter.ts';

export interface FastifyRateLimitOptions {
  /** The limited key; default the client IP. */
  key?: (request: FastifyRequest) => string;
  cost?: (request: FastifyRequest) => number;
}

/**
 * A Fastify `onRequest` hook: sets `RateLimit-*` headers, answers 429 with `Retry-After` on
 * rejection and 503 `{ code }` when a fail-closed limiter cannot reach Redis.
 *
 * @example
 * app.addHook('onRequest', fastifyRateLimit(limiter, { key: (req) => req.headers['x-api-key'] as string }));
 */
export function fastifyRateLimit(
  limiter: RateLimiter,
  options: FastifyRateLimitOptions = {},
): (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined> {
  const keyOf = options.key ?? ((request: FastifyRequest) => request.ip);
  return async (request, reply) => {
    let result;
    try {
      result = await limiter.consume(keyOf(request), options.cost?.(request) ?? 1);
    } catch (error) {
      const e = toWardenError(error);
      // returning the reply tells Fastify the hook answered the request
      return reply.code(e.httpStatus).send({ code: e.code, message: e.message });
    }
    reply.headers(rateLimitHeaders(result));
    if (!result.allowed) {
      return reply.code(429).send({ error: 'Too Many Requests', retryAfterMs: result.retryAfterMs });
    }
    return undefined;
  };
}
