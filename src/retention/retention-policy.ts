import { WardenError, type ErrorCode } from '../errors.ts';

/**
 * Which backups to keep. A backup stays when ANY rule wants it (rules are a union, never an
 * intersection); named backups and the newest valid backup always stay. An absent or zero rule
 * keeps nothing by itself.
 */
export interface RetentionPolicy {
  /**
   * Grandfather-father-son: the newest backup of each of the last N UTC calendar days, ISO weeks
   * (Monday to Sunday, UTC) and calendar months, counting the current one. 0 turns a tier off.
   */
  gfs?: { daily: number; weekly: number; monthly: number };
  /** Every backup of a kind younger than this (by its consistency time) stays. */
  maxAge?: { fullMs?: number; incrementalMs?: number };
  /** The newest N backups stay. */
  keepLast?: number;
  /**
   * Restorable to any second in the last N ms: the newest backup consistent at or before
   * now − N stays, with everything after it (and its WAL onwards).
   */
  recoveryWindowMs?: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** The requirements' defaults: GFS 7 daily / 4 weekly / 12 monthly, full 90 days, incremental 7 days. */
export const DEFAULT_RETENTION_POLICY: RetentionPolicy = Object.freeze({
  gfs: Object.freeze({ daily: 7, weekly: 4, monthly: 12 }),
  maxAge: Object.freeze({ fullMs: 90 * DAY_MS, incrementalMs: 7 * DAY_MS }),
});

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS, w: 7 * DAY_MS };

/**
 * Parses a retention duration: a whole number with a unit `s`, `m` (minutes), `h`, `d` or `w`;
 * `0` alone means off. Months are not accepted: they differ in length, so a window of "1 month"
 * would promise different things on different days.
 *
 * @example parseDuration('7d', 'retention.recoveryWindow') // 604800000
 */
export function parseDuration(
  text: string,
  field: string,
  code: ErrorCode = 'WARDEN_E_CONFIG_INVALID',
): number {
  const match = /^\s*(\d+)\s*([smhdw])?\s*$/.exec(text);
  const unit = match?.[2];
  if (!match || (unit === undefined && match[1] !== '0')) {
    throw new WardenError(
      code,
      `${field}: "${text}" is not a duration (expected a number with s, m, h, d or w, like 7d)`,
      { details: { field, value: text } },
    );
  }
  return Number(match[1]) * (unit ? UNITS[unit]! : 0);
}

/** The shortest exact text for a duration in ms (`7d`, `36h`), the inverse of {@link parseDuration}. */
export function formatRetentionDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's']) {
    const size = UNITS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** One line describing a policy, for reports (`GFS 7/4/12, full 90d, incremental 7d`). */
export function describePolicy(policy: RetentionPolicy): string {
  const parts: string[] = [];
  if (policy.gfs && policy.gfs.daily + policy.gfs.weekly + policy.gfs.monthly > 0)
    parts.push(`GFS daily ${policy.gfs.daily}, weekly ${policy.gfs.weekly}, monthly ${policy.gfs.monthly}`);
  if (policy.maxAge?.fullMs) parts.push(`full ${formatRetentionDuration(policy.maxAge.fullMs)}`);
  if (policy.maxAge?.incrementalMs)
    parts.push(`incremental ${formatRetentionDuration(policy.maxAge.incrementalMs)}`);
  if (policy.keepLast) parts.push(`keep last ${policy.keepLast}`);
  if (policy.recoveryWindowMs)
    parts.push(`recovery window ${formatRetentionDuration(policy.recoveryWindowMs)}`);
  return parts.length ? parts.join(', ') : 'no rule (only named and the newest valid backup stay)';
}
