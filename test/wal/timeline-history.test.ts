import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isWardenError } from '../../src/errors.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import {
  formatTimelineHistory,
  historyFileName,
  parseHistoryFileName,
  parseTimelineHistory,
  timelineOfLsn,
} from '../../src/wal/timeline-history.ts';

// As PostgreSQL 15 writes it after two promotions (timeline.c: "%u\t%X/%X\t%s\n").
const HISTORY_3 =
  '1\t0/3000158\tno recovery target specified\n\n2\t0/5000000\tbefore 2024-05-01 10:00:00+00\n';

test('historyFileName names the history file of a timeline', () => {
  assert.equal(historyFileName(2), '00000002.history');
  assert.equal(historyFileName(0x1a), '0000001A.history');
  assert.equal(parseHistoryFileName('0000001A.history'), 0x1a);
  assert.equal(parseHistoryFileName('00000000.history'), undefined);
  assert.equal(parseHistoryFileName('000000010000000000000003'), undefined);
  assert.throws(
    () => historyFileName(0),
    (e) => isWardenError(e, 'WARDEN_E_USAGE'),
  );
});

test('parseTimelineHistory reads entries, skipping blank lines and comments', () => {
  assert.deepEqual(parseTimelineHistory(`# made by hand\n   \n${HISTORY_3}`), [
    { timeline: 1, switchLsn: parseLsn('0/3000158'), reason: 'no recovery target specified' },
    { timeline: 2, switchLsn: parseLsn('0/5000000'), reason: 'before 2024-05-01 10:00:00+00' },
  ]);
  assert.deepEqual(parseTimelineHistory(''), []);
  assert.deepEqual(parseTimelineHistory('1\t0/3000158\r\n'), [
    { timeline: 1, switchLsn: 0x300_0158n, reason: '' },
  ]);
});

test('parseTimelineHistory rejects malformed lines and non-increasing timelines', () => {
  for (const bad of [
    'x\t0/1\treason',
    '1\treason',
    '1\t0/1\tr\n1\t0/2\tr',
    '2\t0/1\tr\n1\t0/2\tr',
    '0\t0/1\tr',
  ]) {
    assert.throws(
      () => parseTimelineHistory(bad),
      (e) => isWardenError(e, 'WARDEN_E_WAL_FORMAT'),
      bad,
    );
  }
});

test('timelineOfLsn follows the history: before a switchpoint the parent, from it on the child', () => {
  const history = parseTimelineHistory(HISTORY_3);
  assert.equal(timelineOfLsn(history, 3, 0n), 1);
  assert.equal(timelineOfLsn(history, 3, parseLsn('0/3000157')), 1);
  assert.equal(timelineOfLsn(history, 3, parseLsn('0/3000158')), 2);
  assert.equal(timelineOfLsn(history, 3, parseLsn('0/4FFFFFF')), 2);
  assert.equal(timelineOfLsn(history, 3, parseLsn('0/5000000')), 3);
  assert.equal(timelineOfLsn([], 1, parseLsn('FF/0')), 1);
  assert.throws(
    () => timelineOfLsn(history, 2, 0n),
    (e) => isWardenError(e, 'WARDEN_E_WAL_FORMAT'),
  );
});

test('formatTimelineHistory and parseTimelineHistory round-trip', () => {
  const entryArb = fc.record({
    step: fc.integer({ min: 1, max: 1000 }),
    switchLsn: fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }),
    reason: fc.string({ unit: 'grapheme-ascii' }).map((s) => s.replace(/[\r\n]/g, ' ').trim()),
  });
  fc.assert(
    fc.property(fc.array(entryArb, { maxLength: 10 }), (raw) => {
      let tli = 0;
      const history = raw.map((e) => ({
        timeline: (tli += e.step),
        switchLsn: e.switchLsn,
        reason: e.reason,
      }));
      assert.deepEqual(parseTimelineHistory(formatTimelineHistory(history)), history);
    }),
  );
});
