import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { rateLimitHeaders, type RateLimitHeaderFormat } from './headers.ts';
import type { RateLimiter } from './rate-limiter.ts';

export interface ExpressRateLimitOptions {
  /** The limited key; default the client IP. */
  key?: (req: Request) => string;
  cost?: (req: Request) => number;
  /**
   * Default `draft-11` (`RateLimit-Policy` + `RateLimit`); `legacy` for
   * `RateLimit-Limit/-Remaining/-Reset`; `both`; `none`.
   */
  headers?: RateLimitHeaderFormat;
}

/**
 * Express middleware: sets the `RateLimit-Policy` and `RateLimit` fields (or the legacy ones),
 * answers 429 with `Retry-After` on rejection, and passes `WARDEN_E_RATE_LIMIT_UNAVAILABLE` (fail-closed limiter, Redis down) to `next`.
 *
 * @example
 * app.use('/api', expressRateLimit(new RateLimiter({ redis, limit: 100, windowMs: 60_000 })));
 */
export function expressRateLimit(
  limiter: RateLimiter,
  options: ExpressRateLimitOptions = {},
): RequestHandler {
  const keyOf = options.key ?? ((req: Request) => req.ip ?? 'unknown');
  const format = options.headers ?? 'draft-11';
  return (req: Request, res: Response, next: NextFunction) => {
    limiter.consume(keyOf(req), options.cost?.(req) ?? 1).then(
      (result) => {
        res.set(rateLimitHeaders(result, format));
        if (result.allowed) return next();
        res.status(429).json({ error: 'Too Many Requests', retryAfterMs: result.retryAfterMs });
      },
      (error: unknown) => next(error),
    );
  };
}
