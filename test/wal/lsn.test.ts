import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { isWardenError } from '../../src/errors.ts';
import {
  formatLsn,
  parseLsn,
  parseSegmentName,
  parseSegmentSize,
  segmentName,
  segmentStart,
} from '../../src/wal/lsn.ts';

const MB16 = 16 * 1024 * 1024;
const lsnArb = fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn });
const segmentSizeArb = fc.integer({ min: 20, max: 30 }).map((bits) => 2 ** bits);
const timelineArb = fc.integer({ min: 1, max: 0xffff_ffff });

test('parseLsn reads PostgreSQL text LSNs', () => {
  assert.equal(parseLsn('16/B374D848'), 0x16_b374_d848n);
  assert.equal(parseLsn('0/0'), 0n);
  assert.equal(parseLsn('ffffffff/ffffffff'), 0xffff_ffff_ffff_ffffn);
  assert.equal(parseLsn('0/3000060'), 0x300_0060n);
});

test('parseLsn rejects malformed text with WARDEN_E_USAGE', () => {
  for (const bad of ['', '16', '16/', '/1', '1/2/3', ' 1/2', '1/2 ', 'G/1', '123456789/0', '0x1/2', '-1/2']) {
    assert.throws(
      () => parseLsn(bad),
      (e) => isWardenError(e, 'WARDEN_E_USAGE'),
      bad,
    );
  }
});

test('formatLsn writes uppercase unpadded hex like PostgreSQL', () => {
  assert.equal(formatLsn(0x16_b374_d848n), '16/B374D848');
  assert.equal(formatLsn(0n), '0/0');
  assert.equal(formatLsn(0x1_0000_0000n), '1/0');
  assert.throws(
    () => formatLsn(-1n),
    (e) => isWardenError(e, 'WARDEN_E_USAGE'),
  );
  assert.throws(
    () => formatLsn(1n << 64n),
    (e) => isWardenError(e, 'WARDEN_E_USAGE'),
  );
});

test('formatLsn and parseLsn are inverse for every 64-bit LSN', () => {
  fc.assert(fc.property(lsnArb, (lsn) => parseLsn(formatLsn(lsn)) === lsn));
  fc.assert(
    fc.property(lsnArb, (lsn) => formatLsn(parseLsn(formatLsn(lsn).toLowerCase())) === formatLsn(lsn)),
  );
});

test('segmentName matches XLogFileName for 16MB segments', () => {
  assert.equal(segmentName(1, 0n, MB16), '000000010000000000000000');
  assert.equal(segmentName(1, parseLsn('0/3000060'), MB16), '000000010000000000000003');
  assert.equal(segmentName(2, parseLsn('16/B374D848'), MB16), '0000000200000016000000B3');
  assert.equal(segmentName(1, parseLsn('1/FFFFFFFF'), MB16), '0000000100000001000000FF');
  // 1GB segments: four per "log id"
  assert.equal(segmentName(1, parseLsn('16/B374D848'), 1024 ** 3), '000000010000001600000002');
});

test('segmentName and parseSegmentName round-trip to the segment start', () => {
  fc.assert(
    fc.property(timelineArb, lsnArb, segmentSizeArb, (tli, lsn, size) => {
      const name = segmentName(tli, lsn, size);
      assert.match(name, /^[0-9A-F]{24}$/);
      assert.deepEqual(parseSegmentName(name, size), { timeline: tli, startLsn: segmentStart(lsn, size) });
    }),
  );
});

test('segmentStart is the largest segment boundary not after the LSN', () => {
  fc.assert(
    fc.property(lsnArb, segmentSizeArb, (lsn, size) => {
      const start = segmentStart(lsn, size);
      return start <= lsn && lsn - start < BigInt(size) && start % BigInt(size) === 0n;
    }),
  );
});

test('parseSegmentName rejects names that are not segments of this size', () => {
  for (const bad of [
    '00000001000000000000000',
    '0000000100000000000000000',
    '00000001000000000000000a', // lowercase, as IsXLogFileName
    '000000010000000000000003.partial',
    '00000002.history',
    '000000000000000000000003', // timeline 0
    '000000010000000000000100', // segment 256 of a log id with 256 segments of 16MB
  ]) {
    assert.equal(parseSegmentName(bad, MB16), undefined, bad);
  }
  assert.throws(
    () => parseSegmentName('000000010000000000000003', 1000),
    (e) => isWardenError(e, 'WARDEN_E_USAGE'),
  );
});

test('parseSegmentSize reads SHOW wal_segment_size', () => {
  assert.equal(parseSegmentSize('16MB'), MB16);
  assert.equal(parseSegmentSize('1GB'), 1024 ** 3);
  assert.equal(parseSegmentSize('1MB'), 1024 ** 2);
  assert.equal(parseSegmentSize('65536kB'), 64 * 1024 ** 2);
  assert.equal(parseSegmentSize('16777216'), MB16);
  for (const bad of ['', '16 MiB', '15MB', '2GB', '512kB', 'MB', '16mb', '-16MB']) {
    assert.throws(
      () => parseSegmentSize(bad),
      (e) => isWardenError(e, 'WARDEN_E_USAGE'),
      bad,
    );
  }
});
