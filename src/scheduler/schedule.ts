import { isValidTimeZone } from '../util/time-zone.ts';
import { Cron } from 'croner';
import { WardenError } from '../errors.ts';

/**
 * A cron expression in a time zone (5 fields, or 6 with seconds first). Validated when built,
 * with errors naming the config field. Only computes instants: the scheduler owns the timers,
 * so several daemons can agree on which slot is due.
 */
export class Schedule {
  private readonly cron: Cron;

  constructor(
    readonly pattern: string,
    readonly timezone: string,
    field: string,
  ) {
    if (!isValidTimeZone(timezone)) {
      throw new WardenError(
        'WARDEN_E_CONFIG_INVALID',
        `${field}: time zone "${timezone}" is not an IANA time zone (e.g. UTC, Europe/Berlin)`,
        { details: { field, timezone } },
      );
    }
    try {
      this.cron = new Cron(pattern, { timezone, paused: true });
      this.cron.nextRun();
    } catch (cause) {
      throw new WardenError(
        'WARDEN_E_CONFIG_INVALID',
        `${field}: "${pattern}" is not a valid cron expression (${(cause as Error).message})`,
        {
          details: { field, pattern },
          hint: 'Use 5 fields (minute hour day month weekday) or 6 with seconds first.',
          cause,
        },
      );
    }
  }

  /** The most recent slot at or before `now`, if any. */
  latestDue(now: Date): Date | undefined {
    return this.cron.previousRuns(1, now)[0];
  }

  next(after: Date): Date | undefined {
    return this.cron.nextRun(after) ?? undefined;
  }

  /** The longest gap between consecutive slots over the next `count` runs (for objective checks). */
  longestGapMs(from: Date, count = 60): number {
    const runs = this.cron.nextRuns(count, from);
    let longest = 0;
    for (let i = 1; i < runs.length; i += 1)
      longest = Math.max(longest, runs[i]!.getTime() - runs[i - 1]!.getTime());
    return longest;
  }
}

export { isValidTimeZone };

/** Longest gap between slots of any of the schedules merged (how stale the newest backup can get). */
export function longestCombinedGapMs(schedules: readonly Schedule[], from: Date, count = 200): number {
  const perSchedule = schedules.map((schedule) => {
    const out: number[] = [];
    let at: Date | undefined = from;
    for (let i = 0; i < count && at; i += 1) {
      at = schedule.next(at);
      if (at) out.push(at.getTime());
    }
    return out;
  });
  // Compare only up to where every schedule was enumerated, so a frequent one does not end early.
  const horizon = Math.min(...perSchedule.map((runs) => runs.at(-1) ?? Infinity));
  const runs = perSchedule
    .flat()
    .filter((t) => t <= horizon)
    .sort((a, b) => a - b);
  let longest = 0;
  for (let i = 1; i < runs.length; i += 1) longest = Math.max(longest, runs[i]! - runs[i - 1]!);
  return longest;
}
