import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { rateLimitHeaders } from './headers.ts';
import type { RateLimiter } from './rate-limiter.ts';

export interface ExpressRateLimitOptions {
  /** The limited key; default the client IP. */
  key?: (req: Request) => string;
  cost?: (req: Request) => number;
}

/**
 * Express middleware: sets `RateLimit-*` headers, answers 429 with `Retry-After` on rejection,
 * and passes `WARDEN_E_RATE_LIMIT_UNAVAILABLE` (fail-closed limiter, Redis down) to `next`.
 *
 * @example
 * app.use('/api', expressRateLimit(new RateLimiter({ redis, limit: 100, windowMs: 60_000 })));
 */
export function expressRateLimit(
  limiter: RateLimiter,
  options: ExpressRateLimitOptions = {},
): RequestHandler {
  const keyOf = options.key ?? ((req: Request) => req.ip ?? 'unknown');
  return (req: Request, res: Response, next: NextFunction) => {
    limiter.consume(keyOf(req), options.cost?.(req) ?? 1).then(
      (result) => {
        res.set(rateLimitHeaders(result));
        if (result.allowed) return next();
        res.status(429).json({ error: 'Too Many Requests', retryAfterMs: result.retryAfterMs });
      },
      (error: unknown) => next(error),
    );
  };
}
