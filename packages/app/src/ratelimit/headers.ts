import type { RateLimitPolicy, RateLimitResult } from './rate-limiter.ts';

/**
 * Which rate-limit fields a response carries:
 * - `draft-11` (default): `RateLimit-Policy` and `RateLimit` of draft-ietf-httpapi-ratelimit-headers-11;
 * - `legacy`: `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` of drafts -00 to -06;
 * - `both`, or `none`.
 * A rejected request gets `Retry-After` whatever the choice.
 */
export type RateLimitHeaderFormat = 'draft-11' | 'legacy' | 'both' | 'none';

/** A Structured Field String (RFC 9651 section 3.3.3); the limiter admits printable ASCII only. */
function sfString(value: string): string {
  return `"${value.replace(/[\\"]/g, '\\$&')}"`;
}

/** `RateLimit-Policy`: `"default";q=100;w=60` — quota `q` per window `w` seconds. */
export function rateLimitPolicyField(policy: RateLimitPolicy): string {
  return `${sfString(policy.name)};q=${policy.quota};w=${policy.windowSeconds}`;
}

/**
 * `RateLimit`: `"default";r=50;t=30` — `r` requests available now, `t` the effective window in
 * seconds. GCRA refills continuously, so on an allowed request `t` is the time until the full
 * burst is back (within it the client gets no more than `r` plus what refills, and no fewer
 * than `r`); on a rejected one it is the `Retry-After` delay, since the draft says `Retry-After`
 * should not point before the end of the effective window.
 */
export function rateLimitField(result: RateLimitResult): string {
  const t = result.allowed ? Math.ceil(result.resetMs / 1000) : retryAfterSeconds(result);
  return `${sfString(result.policy.name)};r=${result.remaining};t=${t}`;
}

function retryAfterSeconds(result: RateLimitResult): number {
  return Math.max(1, Math.ceil(result.retryAfterMs / 1000));
}

/** The rate-limit fields of one response, plus `Retry-After` (seconds, rounded up) on rejection. */
export function rateLimitHeaders(
  result: RateLimitResult,
  format: RateLimitHeaderFormat = 'draft-11',
): Record<string, string> {
  const headers: Record<string, string> = {};
  if (format === 'draft-11' || format === 'both') {
    headers['RateLimit-Policy'] = rateLimitPolicyField(result.policy);
    headers['RateLimit'] = rateLimitField(result);
  }
  if (format === 'legacy' || format === 'both') {
    headers['RateLimit-Limit'] = String(result.limit);
    headers['RateLimit-Remaining'] = String(result.remaining);
    headers['RateLimit-Reset'] = String(Math.ceil(result.resetMs / 1000));
  }
  if (!result.allowed) headers['Retry-After'] = String(retryAfterSeconds(result));
  return headers;
}
