import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gapAtResume } from '../../src/backup/wal-gap-detection.ts';
import type { SegmentRecord, WalInventory } from '../../src/repository/wal-archive.ts';
import { formatLsn, segmentName, type Lsn } from '../../src/wal/lsn.ts';

// Where the repository's WAL ends when the receiver resumes, per timeline, exactly: the gap
// detection behind the WAL gap incidents (issue 11).

const SEG = 16 * 1024 * 1024;
const seg = (n: number): Lsn => BigInt(n) * BigInt(SEG);

function record(timeline: number, start: Lsn, validBytes = SEG): SegmentRecord {
  return {
    format: 1,
    segment: segmentName(timeline, start, SEG),
    timeline,
    startLsn: formatLsn(start),
    compression: 'zstd',
    size: 1,
    sha256: '',
    validBytes,
    commits: 0,
  };
}

function inventory(
  segments: SegmentRecord[],
  switches: Array<{ timeline: number; parent: number; at: Lsn }> = [],
): WalInventory {
  const byTimeline = new Map<number, SegmentRecord[]>();
  for (const r of segments) byTimeline.set(r.timeline, [...(byTimeline.get(r.timeline) ?? []), r]);
  return {
    segments: byTimeline,
    partials: [],
    histories: switches.map((s) => s.timeline),
    historyEntries: new Map(
      switches.map((s) => [s.timeline, [{ timeline: s.parent, switchLsn: s.at, reason: 'promoted' }]]),
    ),
  };
}

test('a repository without WAL has no gap: its first WAL starts a range', () => {
  assert.equal(gapAtResume(inventory([]), 1, seg(9), SEG), undefined);
});

test('resuming where the WAL ends, or before, is no gap', () => {
  const inv = inventory([record(1, seg(2)), record(1, seg(3))]);
  assert.equal(gapAtResume(inv, 1, seg(4), SEG), undefined);
  assert.equal(gapAtResume(inv, 1, seg(3), SEG), undefined);
});

test('resuming past the end is a gap from the exact end, also inside a segment archived short', () => {
  const full = inventory([record(1, seg(2)), record(1, seg(3))]);
  assert.deepEqual(gapAtResume(full, 1, seg(7), SEG), { timeline: 1, from: seg(4), to: seg(7) });
  // A leftover partial archived with 1000 bytes: resuming at the next segment leaves a hole in it.
  const short = inventory([record(1, seg(2)), record(1, seg(3), 1000)]);
  assert.deepEqual(gapAtResume(short, 1, seg(4), SEG), { timeline: 1, from: seg(3) + 1000n, to: seg(4) });
});

test('a short last segment of a timeline that ends at the switch is complete, not a gap', () => {
  const switchAt = seg(3) + 5000n;
  const inv = inventory(
    [record(1, seg(2)), record(1, seg(3), 5000)],
    [{ timeline: 2, parent: 1, at: switchAt }],
  );
  assert.equal(gapAtResume(inv, 1, seg(4), SEG), undefined, 'timeline 1 ended at its switch');
  assert.equal(gapAtResume(inv, 2, seg(3), SEG), undefined, 'timeline 2 continues it from its segment');
  // Timeline 2 resumed past the switch's segment: the WAL of timeline 2 between is missing.
  assert.deepEqual(gapAtResume(inv, 2, seg(6), SEG), { timeline: 2, from: switchAt, to: seg(6) });
});

test('a timeline without WAL whose parent stops before the switch: the gap starts in the parent', () => {
  const inv = inventory([record(1, seg(2))], [{ timeline: 2, parent: 1, at: seg(5) + 100n }]);
  assert.deepEqual(gapAtResume(inv, 2, seg(5), SEG), { timeline: 1, from: seg(3), to: seg(5) });
});
