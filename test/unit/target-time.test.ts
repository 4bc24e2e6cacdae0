import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '../../src/errors.ts';
import { formatInZone, parseTargetTime } from '../../src/restore/target-time.ts';

const iso = (text: string, zone?: string) => parseTargetTime(text, zone).time.toISOString();

function refused(
  text: string,
  zone: string | undefined,
  detail?: (details: Record<string, unknown>) => void,
) {
  assert.throws(
    () => parseTargetTime(text, zone),
    (error: unknown) => {
      assert.ok(isWardenError(error, 'WARDEN_E_USAGE'), String(error));
      detail?.(error.details);
      return true;
    },
  );
}

test('a time without a zone is refused, the fix naming this machine zone', () => {
  refused('2026-12-05 15:02:00', undefined, (details) => {
    assert.equal(details.toTime, '2026-12-05 15:02:00');
    assert.equal(details.localTimeZone, Intl.DateTimeFormat().resolvedOptions().timeZone);
  });
  refused('2026-12-05T15:02', undefined);
  refused('2026-12-05', undefined);
});

test('a time with Z, UTC or an offset is that instant, whatever --timezone says', () => {
  assert.equal(iso('2026-12-05T15:02:00Z'), '2026-12-05T15:02:00.000Z');
  assert.equal(iso('2026-12-05 15:02:00 UTC'), '2026-12-05T15:02:00.000Z');
  assert.equal(iso('2026-12-05 15:02:00.25+01:00'), '2026-12-05T14:02:00.250Z');
  assert.equal(iso('2026-12-05 15:02+0530'), '2026-12-05T09:32:00.000Z');
  assert.equal(iso('2026-12-05 15:02:00-05'), '2026-12-05T20:02:00.000Z');
  assert.equal(iso('2026-12-05 15:02:00Z', 'America/New_York'), '2026-12-05T15:02:00.000Z');
});

test('a wall time with --timezone follows that zone rules on that date, across daylight saving', () => {
  // New York: EST (-05) until 2026-03-08 02:00, EDT (-04) until 2026-11-01 02:00.
  assert.equal(iso('2026-03-08 01:59:59', 'America/New_York'), '2026-03-08T06:59:59.000Z');
  assert.equal(iso('2026-03-08 03:00:00', 'America/New_York'), '2026-03-08T07:00:00.000Z');
  assert.equal(iso('2026-07-04 12:00', 'America/New_York'), '2026-07-04T16:00:00.000Z');
  assert.equal(iso('2026-11-01 00:59', 'America/New_York'), '2026-11-01T04:59:00.000Z');
  assert.equal(iso('2026-11-01 02:00', 'America/New_York'), '2026-11-01T07:00:00.000Z');
  assert.equal(iso('2026-12-05 15:02:00', 'America/New_York'), '2026-12-05T20:02:00.000Z');
  // Berlin, the other hemisphere, a half-hour zone.
  assert.equal(iso('2026-03-29 01:59', 'Europe/Berlin'), '2026-03-29T00:59:00.000Z');
  assert.equal(iso('2026-03-29 03:00', 'Europe/Berlin'), '2026-03-29T01:00:00.000Z');
  assert.equal(iso('2026-10-04 03:00', 'Australia/Sydney'), '2026-10-03T16:00:00.000Z');
  assert.equal(iso('2026-12-05 10:00', 'Asia/Kolkata'), '2026-12-05T04:30:00.000Z');
  assert.equal(iso('2026-12-05 15:02:00.123', 'UTC'), '2026-12-05T15:02:00.123Z');
});

test('a wall time the zone skips or repeats is refused with both readings', () => {
  refused('2026-03-08 02:30', 'America/New_York', (details) =>
    assert.equal(details.timeZone, 'America/New_York'),
  );
  refused('2026-11-01 01:30', 'America/New_York', (details) =>
    assert.deepEqual(details.candidates, ['2026-11-01T05:30:00.000Z', '2026-11-01T06:30:00.000Z']),
  );
  refused('2026-10-25 02:30', 'Europe/Berlin', (details) =>
    assert.deepEqual(details.candidates, ['2026-10-25T00:30:00.000Z', '2026-10-25T01:30:00.000Z']),
  );
});

test('malformed times, impossible dates and unknown zones are refused', () => {
  refused('yesterday', 'UTC');
  refused('2026-02-30 10:00Z', undefined);
  refused('2026-12-05 24:00Z', undefined);
  refused('2026-12-05 10:00+25:00', undefined);
  refused('2026-12-05 10:00', 'Mars/Olympus_Mons');
});

test('an instant is shown as the wall time of a zone with its offset', () => {
  assert.equal(
    formatInZone(new Date('2026-12-05T20:02:00Z'), 'America/New_York'),
    '2026-12-05 15:02:00 America/New_York (UTC-05:00)',
  );
  assert.equal(
    formatInZone(new Date('2026-07-04T16:00:00.250Z'), 'America/New_York'),
    '2026-07-04 12:00:00.250 America/New_York (UTC-04:00)',
  );
  assert.equal(
    formatInZone(new Date('2026-12-05T04:30:00Z'), 'Asia/Kolkata'),
    '2026-12-05 10:00:00 Asia/Kolkata (UTC+05:30)',
  );
});
