import { toWardenError, type ErrorCode } from '../errors.ts';

/**
 * `ok`: as it should be. `warn`: works, but something needs attention (exit unaffected).
 * `fail`: Warden cannot work like this (the command exits non-zero). `skip`: not run, because
 * what it needs failed first or does not exist yet (the message says which).
 */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

/** One line of `warden check`: what was checked, what was found, and the fix. */
export interface CheckResult {
  /** Stable name (`wal-level`, `repository`, ...), for scripts. */
  name: string;
  status: CheckStatus;
  message: string;
  /** What to do about it (for `warn` and `fail`). */
  fix?: string;
  /** The catalogue code of the failure (src/errors.ts); its exit status is the command's. */
  code?: ErrorCode;
  details?: Record<string, unknown>;
  durationMs?: number;
}

type Extra = Pick<CheckResult, 'fix' | 'code' | 'details'>;

export function ok(name: string, message: string, details?: Record<string, unknown>): CheckResult {
  return { name, status: 'ok', message, ...(details ? { details } : {}) };
}

export function warn(name: string, message: string, extra: Extra = {}): CheckResult {
  return { name, status: 'warn', message, ...extra };
}

export function fail(
  name: string,
  code: ErrorCode,
  message: string,
  extra: Omit<Extra, 'code'> = {},
): CheckResult {
  return { name, status: 'fail', message, code, ...extra };
}

export function skip(name: string, reason: string): CheckResult {
  return { name, status: 'skip', message: reason };
}

/** A failure from whatever a check threw, keeping its code, message, hint and details. */
export function failFrom(name: string, error: unknown, prefix?: string): CheckResult {
  const wrapped = toWardenError(error);
  return fail(name, wrapped.code, prefix ? `${prefix}: ${wrapped.message}` : wrapped.message, {
    ...(wrapped.hint ? { fix: wrapped.hint } : {}),
    ...(Object.keys(wrapped.details).length ? { details: wrapped.details } : {}),
  });
}

/** Runs a check, timing it; anything it throws becomes its failure. */
export async function timed(name: string, run: () => Promise<CheckResult>): Promise<CheckResult> {
  const started = performance.now();
  let result: CheckResult;
  try {
    result = await run();
  } catch (error) {
    result = failFrom(name, error);
  }
  return { ...result, durationMs: Math.round(performance.now() - started) };
}
