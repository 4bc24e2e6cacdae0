import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '../../src/errors.ts';
import type { BackupRecord } from '../../src/repository/backup-catalog.ts';
import type { SegmentRecord, WalInventory } from '../../src/repository/wal-archive.ts';
import { planRestore } from '../../src/restore/restore-planner.ts';
import { formatLsn, parseLsn, segmentName } from '../../src/wal/lsn.ts';

const SEGMENT_SIZE = 16 * 1024 * 1024;
const seg = (n: number) => BigInt(n * SEGMENT_SIZE);

function backup(id: string, segmentNo: number): BackupRecord {
  return {
    id,
    timeline: 1,
    startLsn: formatLsn(seg(segmentNo) + 0x28n),
    endLsn: formatLsn(seg(segmentNo) + 0x200n),
    startTime: new Date(Date.UTC(2024, 0, segmentNo)).toISOString(),
    endTime: new Date(Date.UTC(2024, 0, segmentNo, 1)).toISOString(),
  } as BackupRecord;
}

/** Segments 1..5 archived, 6 partial; restore points by segment number and offset. */
function inventory(points: Array<[name: string, segmentNo: number, offset: number]>): WalInventory {
  const segments: SegmentRecord[] = [];
  for (let n = 1; n <= 5; n += 1) {
    const here = points.filter(([, s]) => s === n);
    segments.push({
      format: 1,
      segment: segmentName(1, seg(n), SEGMENT_SIZE),
      timeline: 1,
      startLsn: formatLsn(seg(n)),
      compression: 'zstd',
      size: 1,
      sha256: '',
      validBytes: SEGMENT_SIZE,
      commits: 0,
      ...(here.length
        ? {
            restorePoints: here.map(([name, , offset]) => ({
              name,
              lsn: formatLsn(seg(n) + BigInt(offset)),
              time: '2024-01-01T00:00:00.000Z',
            })),
          }
        : {}),
    });
  }
  const partial = {
    key: 'p',
    segment: segmentName(1, seg(6), SEGMENT_SIZE),
    timeline: 1,
    startLsn: seg(6),
    validBytes: 0x1000,
  };
  return { segments: new Map([[1, segments]]), partials: [partial], histories: [] };
}

const backups = [backup('b1', 1), backup('b2', 3)];

function plan(name: string, points: Array<[string, number, number]>, partialPoints: string[] = []) {
  return planRestore(
    { kind: 'name', name },
    backups,
    inventory(points),
    SEGMENT_SIZE,
    undefined,
    partialPoints.map((n, i) => ({ name: n, lsn: seg(6) + 0x100n + BigInt(i * 0x80), time: new Date() })),
  );
}

const segmentsOf = (p: ReturnType<typeof plan>) => p.segments.map((s) => parseLsn(s.startLsn) / seg(1));

test('a restore point: the newest backup consistent before it, WAL through its segment', () => {
  const p = plan('x', [['x', 4, 0x100]]);
  assert.equal(p.backup.id, 'b2');
  assert.deepEqual(segmentsOf(p), [3n, 4n]);
  assert.equal(p.partial, undefined);
  assert.equal(p.recovery.recovery_target_name, 'x');
  // In the middle of b2's backup: only b1 became consistent before it.
  const during = plan('x', [['x', 3, 0x100]]);
  assert.equal(during.backup.id, 'b1');
  assert.deepEqual(segmentsOf(during), [1n, 2n, 3n]);
});

test('a repeated name: PostgreSQL stops at the first one after the backup start, so the plan does too', () => {
  const newest = plan('x', [
    ['x', 2, 0x100],
    ['x', 4, 0x100],
  ]);
  assert.equal(newest.backup.id, 'b2', 'the older occurrence lies before b2 started');
  assert.deepEqual(segmentsOf(newest), [3n, 4n]);
  // No backup lies between these two: replay from b2 meets the older one first.
  const older = plan('x', [
    ['x', 3, 0x300],
    ['x', 3, 0x400],
  ]);
  assert.equal(older.backup.id, 'b2');
  assert.deepEqual(segmentsOf(older), [3n]);
});

test('a restore point in the partial segment takes the partial', () => {
  const p = plan('p', [], ['p']);
  assert.equal(p.backup.id, 'b2');
  assert.deepEqual(segmentsOf(p), [3n, 4n, 5n]);
  assert.equal(p.partial?.segment, segmentName(1, seg(6), SEGMENT_SIZE));
});

test('an unknown name is WARDEN_E_RESTORE_POINT_NOT_FOUND listing the known names', () => {
  assert.throws(
    () =>
      plan(
        'nope',
        [
          ['x', 2, 0x100],
          ['y', 4, 0x100],
          ['x', 5, 0x100],
        ],
        ['p'],
      ),
    (e) =>
      isWardenError(e, 'WARDEN_E_RESTORE_POINT_NOT_FOUND') &&
      JSON.stringify(e.details.knownNames) === JSON.stringify(['x', 'y', 'p']),
  );
});

test('a restore point before every backup became consistent is outside the window', () => {
  assert.throws(
    () => plan('early', [['early', 1, 0x100]]),
    (e) => isWardenError(e, 'WARDEN_E_TARGET_OUTSIDE_WINDOW'),
  );
});
