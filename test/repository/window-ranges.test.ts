import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '../../src/errors.ts';
import type { BackupRecord } from '../../src/repository/backup-catalog.ts';
import type { SegmentRecord, WalInventory } from '../../src/repository/wal-archive.ts';
import { restorableWindow } from '../../src/repository/restorable-window.ts';
import { planRestore } from '../../src/restore/restore-planner.ts';
import { formatLsn, parseLsn, segmentName } from '../../src/wal/lsn.ts';
import { parseTimelineHistory } from '../../src/wal/timeline-history.ts';

const SEG = 16 * 1024 * 1024;
const seg = (n: number) => BigInt(n * SEG);
/** Segment n's commits happen in minute n of 2026-01-01. */
const minute = (n: number, s = 0) => new Date(Date.UTC(2026, 0, 1, 0, n, s));

function backup(id: string, segmentNo: number): BackupRecord {
  return {
    id,
    kind: 'full',
    timeline: 1,
    startLsn: formatLsn(seg(segmentNo) + 0x28n),
    endLsn: formatLsn(seg(segmentNo) + 0x200n),
    startTime: minute(segmentNo, 1).toISOString(),
    endTime: minute(segmentNo, 2).toISOString(),
  } as BackupRecord;
}

function segment(n: number): SegmentRecord {
  return {
    format: 1,
    segment: segmentName(1, seg(n), SEG),
    timeline: 1,
    startLsn: formatLsn(seg(n)),
    compression: 'zstd',
    size: 1,
    sha256: '',
    validBytes: SEG,
    commits: 2,
    firstCommitTime: minute(n, 10).toISOString(),
    lastCommitTime: minute(n, 50).toISOString(),
  };
}

/** Segments 1..5 archived, 6 and 7 lost, 8..9 archived, 10 being received. */
function inventory(): WalInventory {
  return {
    segments: new Map([[1, [1, 2, 3, 4, 5, 8, 9].map(segment)]]),
    partials: [
      { key: 'p', segment: segmentName(1, seg(10), SEG), timeline: 1, startLsn: seg(10), validBytes: 0x1000 },
    ],
    histories: [],
    streamState: {
      timeline: 1,
      flushedLsn: formatLsn(seg(10) + 0x1000n),
      caughtUpAt: minute(11).toISOString(),
      updatedAt: minute(11).toISOString(),
    },
  };
}

const b1 = backup('b1', 1);
const b2 = backup('b2', 3);
const b3 = backup('b3', 8);

test('a gap after a backup splits the window into two ranges, each with the backups it starts from', () => {
  const window = restorableWindow([b1, b2, b3], inventory(), SEG);
  assert.deepEqual(
    window.ranges.map((r) => [r.earliest, r.latest, r.earliestLsn, r.latestLsn, r.backups, r.gapAfter?.from]),
    [
      [b1.endTime, minute(5, 50).toISOString(), b1.endLsn, '0/6000000', ['b1', 'b2'], '0/6000000'],
      [b3.endTime, minute(11).toISOString(), b3.endLsn, formatLsn(seg(10) + 0x1000n), ['b3'], undefined],
    ],
  );
  assert.deepEqual(window.gaps, [
    { timeline: 1, from: '0/6000000', to: '0/8000000', firstMissingSegment: '000000010000000000000006' },
  ]);
  // The top-level fields stay the newest range, as before.
  assert.equal(window.earliest, b3.endTime);
  assert.equal(window.latest, minute(11).toISOString());
});

test('with no backup after the gap, the older range is still the window (not "empty")', () => {
  const window = restorableWindow([b1, b2], inventory(), SEG);
  assert.equal(window.ranges.length, 1);
  assert.equal(window.earliest, b1.endTime);
  assert.equal(window.latest, minute(5, 50).toISOString(), 'up to the last commit before the gap');
  assert.equal(window.ranges[0]!.latestLsn, '0/6000000');
  assert.equal(window.latestLsn, formatLsn(seg(10) + 0x1000n), 'the archive itself goes on after the gap');
  assert.equal(window.ranges[0]!.gapAfter?.firstMissingSegment, '000000010000000000000006');
});

const plan = (target: Parameters<typeof planRestore>[0], backups = [b1, b2]) =>
  planRestore(target, backups, inventory(), SEG);
const segmentsOf = (p: ReturnType<typeof plan>) =>
  p.segments.map((s) => Number(parseLsn(s.startLsn) / seg(1)));

test('--backup before the gap restores from it, with no WAL from beyond the gap', () => {
  const p = plan({ kind: 'backup', id: 'b2' });
  assert.equal(p.backup.id, 'b2');
  assert.deepEqual(segmentsOf(p), [3]);
  assert.equal(p.recovery.recovery_target, 'immediate');
});

test('--latest with no backup after the gap replays up to the gap, and never the WAL after it', () => {
  const p = plan({ kind: 'latest' });
  assert.equal(p.backup.id, 'b2');
  assert.deepEqual(segmentsOf(p), [3, 4, 5]);
  assert.deepEqual(p.partials, []);
  // With a backup after the gap, --latest is the newest range's end.
  const newest = plan({ kind: 'latest' }, [b1, b2, b3]);
  assert.equal(newest.backup.id, 'b3');
  assert.deepEqual(segmentsOf(newest), [8, 9]);
  assert.equal(newest.partials.length, 1);
});

test('--to-time before the gap stops inside the range; after its last commit it replays to the gap', () => {
  const p = plan({ kind: 'time', time: minute(4, 30) });
  assert.equal(p.backup.id, 'b2');
  assert.deepEqual(segmentsOf(p), [3, 4]);
  assert.ok(p.recovery.recovery_target_time);
  // The range's last commit: commits after the gap (segment 8 on) must not make PostgreSQL wait
  // for a target it cannot reach. A moment later lies in the gap (segment 6 may hold commits).
  const last = plan({ kind: 'time', time: minute(5, 50) }, [b1, b2, b3]);
  assert.equal(last.backup.id, 'b2');
  assert.deepEqual(segmentsOf(last), [3, 4, 5]);
  assert.equal(last.recovery.recovery_target_time, undefined);
});

test('--to-lsn before the gap works; the partial after it is not taken', () => {
  const p = plan({ kind: 'lsn', lsn: seg(5) + 0x100n });
  assert.equal(p.backup.id, 'b2');
  assert.deepEqual(segmentsOf(p), [3, 4, 5]);
  assert.equal(p.recovery.recovery_target_lsn, formatLsn(seg(5) + 0x100n));
});

test('a target inside the gap is WARDEN_E_WAL_GAP naming the gap and both sides', () => {
  for (const target of [
    { kind: 'time' as const, time: minute(7) },
    { kind: 'time' as const, time: minute(5, 51) },
    { kind: 'lsn' as const, lsn: seg(6) + 0x10n },
  ]) {
    assert.throws(
      () => plan(target, [b1, b2, b3]),
      (e) =>
        isWardenError(e, 'WARDEN_E_WAL_GAP') &&
        (e.details.gap as { from: string }).from === '0/6000000' &&
        (e.details.before as { latestLsn: string }).latestLsn === '0/6000000' &&
        (e.details.next as { backups: string[] }).backups[0] === 'b3' &&
        e.message.includes('000000010000000000000006'),
    );
  }
  // After the last range (no backup after the gap), the same time is outside the window.
  assert.throws(
    () => plan({ kind: 'time', time: minute(7) }),
    (e) => isWardenError(e, 'WARDEN_E_TARGET_OUTSIDE_WINDOW'),
  );
});

test('a backup whose own WAL has a hole is refused naming that hole', () => {
  const broken = inventory();
  broken.segments.set(1, [1, 2, 4, 5].map(segment));
  assert.throws(
    () => planRestore({ kind: 'backup', id: 'b2' }, [b1, b2], broken, SEG),
    (e) => isWardenError(e, 'WARDEN_E_WAL_GAP') && e.message.includes('000000010000000000000003'),
  );
});

test('ranges follow a timeline switch; a gap on the new timeline cuts the range there', () => {
  const onTimeline = (timeline: number, n: number, validBytes = SEG): SegmentRecord => ({
    ...segment(n),
    segment: segmentName(timeline, seg(n), SEG),
    timeline,
    validBytes,
  });
  // Timeline 1 to 0/3800000, then timeline 2 from there: segments 3..5 and 7..8 (6 lost).
  const switched: WalInventory = {
    segments: new Map([
      [1, [onTimeline(1, 1), onTimeline(1, 2), onTimeline(1, 3, 0x800000)]],
      [2, [3, 4, 5, 7, 8].map((n) => onTimeline(2, n))],
    ]),
    partials: [],
    histories: [2],
    historyEntries: new Map([[2, parseTimelineHistory('1\t0/3800000\tno recovery target specified\n')]]),
  };
  const onTwo = { ...backup('t2', 7), timeline: 2 };
  const window = restorableWindow([b1, onTwo], switched, SEG);
  assert.deepEqual(
    window.ranges.map((r) => [r.timeline, r.backups, r.latestLsn]),
    [
      [2, ['b1'], '0/6000000'],
      [2, ['t2'], '0/9000000'],
    ],
  );
  assert.equal(window.gaps[0]!.firstMissingSegment, '000000020000000000000006');
  const p = planRestore({ kind: 'backup', id: 'b1' }, [b1, onTwo], switched, SEG);
  assert.deepEqual(
    p.segments.map((s) => s.segment),
    ['000000010000000000000001'],
  );
  const latestBefore = planRestore({ kind: 'time', time: minute(5, 50) }, [b1, onTwo], switched, SEG);
  assert.deepEqual(
    latestBefore.segments.map((s) => s.segment),
    [1, 2, 3]
      .map((n) => segmentName(1, seg(n), SEG))
      .concat([3, 4, 5].map((n) => segmentName(2, seg(n), SEG))),
    'across the switch, up to the gap',
  );
});

test('--to-name finds a restore point before the gap and restores from that range', () => {
  const named = inventory();
  const list = named.segments.get(1)!;
  list[3] = {
    ...list[3]!,
    restorePoints: [
      { name: 'before-gap', lsn: formatLsn(seg(4) + 0x100n), time: minute(4, 20).toISOString() },
    ],
  };
  const p = planRestore({ kind: 'name', name: 'before-gap' }, [b1, b2, b3], named, SEG);
  assert.equal(p.backup.id, 'b2');
  assert.deepEqual(segmentsOf(p), [3, 4]);
  assert.equal(p.recovery.recovery_target_name, 'before-gap');
});
