import type { BackupRecord } from '../repository/backup-catalog.ts';
import type { KeepReason } from './keep-rules.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

interface Tier {
  rule: 'gfs-daily' | 'gfs-weekly' | 'gfs-monthly';
  count: number;
  unit: string;
  /** A number per calendar period (UTC), increasing by one from one period to the next. */
  period: (ms: number) => number;
  label: (ms: number) => string;
}

/** Days since 1970-01-01 (UTC). */
export function dayNumber(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

/** ISO weeks (Monday to Sunday, UTC) since the week of 1970-01-01, which was a Thursday. */
export function weekNumber(ms: number): number {
  return Math.floor((dayNumber(ms) + 3) / 7);
}

/** Calendar months (UTC) since January 1970. */
export function monthNumber(ms: number): number {
  const date = new Date(ms);
  return (date.getUTCFullYear() - 1970) * 12 + date.getUTCMonth();
}

/**
 * Grandfather-father-son: for each tier, the newest backup of each of the last N calendar
 * periods, the current period counting as the first. A period without a backup keeps nothing
 * (the tier does not reach further back to make up for it).
 *
 * `candidates` must be sorted oldest first.
 */
export function gfsReasons(
  candidates: readonly BackupRecord[],
  gfs: { daily: number; weekly: number; monthly: number },
  now: Date,
): Array<[BackupRecord, KeepReason]> {
  const tiers: Tier[] = [
    {
      rule: 'gfs-daily',
      count: gfs.daily,
      unit: 'days',
      period: dayNumber,
      label: (ms) => `day ${new Date(ms).toISOString().slice(0, 10)}`,
    },
    {
      rule: 'gfs-weekly',
      count: gfs.weekly,
      unit: 'weeks',
      period: weekNumber,
      label: (ms) => `week of ${new Date((weekNumber(ms) * 7 - 3) * DAY_MS).toISOString().slice(0, 10)}`,
    },
    {
      rule: 'gfs-monthly',
      count: gfs.monthly,
      unit: 'months',
      period: monthNumber,
      label: (ms) => `month ${new Date(ms).toISOString().slice(0, 7)}`,
    },
  ];
  const result: Array<[BackupRecord, KeepReason]> = [];
  const nowMs = now.getTime();
  for (const tier of tiers) {
    if (tier.count <= 0) continue;
    const current = tier.period(nowMs);
    const seen = new Set<number>();
    for (let i = candidates.length - 1; i >= 0; i -= 1) {
      const backup = candidates[i]!;
      const ms = Date.parse(backup.endTime);
      const period = tier.period(ms);
      if (current - period >= tier.count || seen.has(period)) continue;
      seen.add(period);
      result.push([
        backup,
        {
          rule: tier.rule,
          detail: `newest of ${tier.label(ms)} (last ${tier.count} ${tier.unit})`,
        },
      ]);
    }
  }
  return result;
}
