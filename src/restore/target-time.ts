import { WardenError } from '../errors.ts';
import { isValidTimeZone } from '../util/time-zone.ts';

/** A restore's `--to-time` as resolved: the instant, and the zone it was read in when one was given. */
export interface TargetTime {
  time: Date;
  /** The IANA zone of `--timezone`, when given. */
  timeZone?: string;
}

// 2026-12-05T15:02:00Z, 2026-12-05 15:02:00.250+01:00, 2026-12-05 15:02+0100, 2026-12-05 15:02:00 UTC
const PATTERN =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * Reads a restore target time. A time must say its zone — a `Z`/`UTC` or an offset in the text,
 * or an IANA zone given apart (`--timezone Europe/Berlin`): one without is refused, because
 * reading it in whatever zone the shell has would silently restore to another moment.
 * A wall time in a zone is resolved with that zone's rules at that date (Intl), so daylight
 * saving is followed; a wall time the zone skips (clocks forward) or has twice (clocks back) is
 * refused with both readings, since picking one could restore to the wrong hour.
 *
 * @example parseTargetTime('2026-07-01 12:00', 'Europe/Berlin').time.toISOString() // '2026-07-01T10:00:00.000Z'
 */
export function parseTargetTime(text: string, timeZone?: string): TargetTime {
  if (timeZone !== undefined && !isValidTimeZone(timeZone)) {
    throw new WardenError('WARDEN_E_USAGE', `--timezone: "${timeZone}" is not an IANA time zone`, {
      hint: 'Use a name from the tz database, e.g. UTC, Europe/Berlin, America/New_York.',
      details: { timeZone },
    });
  }
  const match = PATTERN.exec(text.trim());
  const notATime = () =>
    new WardenError('WARDEN_E_USAGE', `--to-time: "${text}" is not a date-time`, {
      hint: 'Use ISO 8601 with a zone, e.g. 2026-11-22T10:15:00Z or "2026-11-22 10:15:00+01:00".',
      details: { toTime: text },
    });
  if (!match) throw notATime();
  const [, y, mo, d, h = '00', mi = '00', s = '00', fraction = '', zone] = match;
  const wall = {
    year: Number(y),
    month: Number(mo),
    day: Number(d),
    hour: Number(h),
    minute: Number(mi),
    second: Number(s),
    ms: Number(fraction.padEnd(3, '0').slice(0, 3)),
  };
  const asUtc = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second, wall.ms);
  // Date.UTC rolls 2026-02-30 over into March: a field out of range shows in the round trip.
  const check = new Date(asUtc);
  if (
    check.getUTCFullYear() !== wall.year ||
    check.getUTCMonth() !== wall.month - 1 ||
    check.getUTCDate() !== wall.day ||
    check.getUTCHours() !== wall.hour ||
    check.getUTCMinutes() !== wall.minute ||
    check.getUTCSeconds() !== wall.second
  )
    throw notATime();
  if (zone) {
    const offsetMinutes = /^(z|utc)$/i.test(zone) ? 0 : parseOffset(zone);
    return { time: new Date(asUtc - offsetMinutes * 60_000), ...(timeZone ? { timeZone } : {}) };
  }
  if (timeZone === undefined) {
    const local = Intl.DateTimeFormat().resolvedOptions().timeZone;
    throw new WardenError('WARDEN_E_USAGE', `--to-time: "${text}" has no time zone`, {
      hint:
        `Say which moment it is: add the zone to the time (e.g. "${text.trim()}Z" for UTC, or an offset such as ` +
        `"${text.trim()}+01:00"), or keep it and add --timezone with the IANA zone it was read in ` +
        `(this machine's is ${local}: --timezone ${local}).`,
      details: { toTime: text, localTimeZone: local },
    });
  }
  return { time: new Date(wallTimeInZone(asUtc, timeZone, text)), timeZone };
}

/** `+01:00`, `+0100`, `-05` as minutes east of UTC. */
function parseOffset(zone: string): number {
  const sign = zone.startsWith('-') ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  const hours = Number(digits.slice(0, 2));
  const minutes = Number(digits.slice(2) || '0');
  if (hours > 23 || minutes > 59)
    throw new WardenError('WARDEN_E_USAGE', `--to-time: "${zone}" is not a UTC offset`, {
      hint: 'Offsets run from -23:59 to +23:59, e.g. +01:00.',
    });
  return sign * (hours * 60 + minutes);
}

/**
 * The instant whose wall clock in `timeZone` reads `wallAsUtc` (the wall time's fields taken as
 * if they were UTC). The zone's offset can differ on either side of a change, so both the
 * offsets in force just before and just after are tried: one that reads back the same wall time
 * is the answer; none means the wall time does not exist there, two that it happens twice.
 */
function wallTimeInZone(wallAsUtc: number, timeZone: string, text: string): number {
  const candidates = new Set<number>();
  for (const probe of [wallAsUtc - 86_400_000, wallAsUtc, wallAsUtc + 86_400_000]) {
    const instant = wallAsUtc - offsetMs(timeZone, probe);
    if (wallAsUtcOf(timeZone, instant) === wallAsUtc) candidates.add(instant);
  }
  const found = [...candidates].sort((a, b) => a - b);
  if (found.length === 1) return found[0]!;
  if (found.length === 0) {
    throw new WardenError('WARDEN_E_USAGE', `--to-time: "${text}" does not exist in ${timeZone}`, {
      hint: `The clocks in ${timeZone} skip that hour (daylight saving starts); give the moment with an offset or in UTC.`,
      details: { toTime: text, timeZone },
    });
  }
  const readings = found.map((instant) => new Date(instant).toISOString());
  throw new WardenError(
    'WARDEN_E_USAGE',
    `--to-time: "${text}" happens twice in ${timeZone} (${readings.join(' and ')})`,
    {
      hint: `The clocks in ${timeZone} repeat that hour (daylight saving ends); give the offset to say which, or use UTC.`,
      details: { toTime: text, timeZone, candidates: readings },
    },
  );
}

/** The zone's offset from UTC in force at `instant`, in ms. */
function offsetMs(timeZone: string, instant: number): number {
  return wallAsUtcOf(timeZone, instant) - instant;
}

/** The wall clock in `timeZone` at `instant`, as if those fields were UTC (ms kept). */
function wallAsUtcOf(timeZone: string, instant: number): number {
  const parts = Object.fromEntries(
    zoneFormat(timeZone)
      .formatToParts(new Date(instant))
      .map((part) => [part.type, part.value]),
  );
  return (
    Date.UTC(
      Number(parts.year),
      Number(parts.month) - 1,
      Number(parts.day),
      Number(parts.hour),
      Number(parts.minute),
      Number(parts.second),
    ) +
    (((instant % 1000) + 1000) % 1000)
  );
}

const formats = new Map<string, Intl.DateTimeFormat>();

function zoneFormat(timeZone: string): Intl.DateTimeFormat {
  let format = formats.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formats.set(timeZone, format);
  }
  return format;
}

/**
 * An instant as a wall time in a zone with its offset, e.g. `2026-12-05 15:02:00 America/New_York (UTC-05:00)`.
 */
export function formatInZone(time: Date, timeZone: string): string {
  const wall = new Date(wallAsUtcOf(timeZone, time.getTime()));
  const offset = Math.round((wall.getTime() - time.getTime()) / 60_000);
  const sign = offset < 0 ? '-' : '+';
  const abs = Math.abs(offset);
  const hhmm = `${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  const iso = wall.toISOString();
  const ms = iso.slice(19, 23) === '.000' ? '' : iso.slice(19, 23);
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${ms} ${timeZone} (UTC${sign}${hhmm})`;
}
