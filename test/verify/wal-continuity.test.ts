import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BackupRecord } from '../../src/repository/backup-catalog.ts';
import type { SegmentRecord, WalInventory } from '../../src/repository/wal-archive.ts';
import { checkWalContinuity, type ContinuityInput } from '../../src/verify/wal-continuity.ts';
import { formatLsn, segmentName } from '../../src/wal/lsn.ts';
import { parseTimelineHistory } from '../../src/wal/timeline-history.ts';

const SEG = 16 * 1024 * 1024;

function segment(timeline: number, n: number, validBytes = SEG): SegmentRecord {
  const start = BigInt(n) * BigInt(SEG);
  return {
    format: 1,
    segment: segmentName(timeline, start, SEG),
    timeline,
    startLsn: formatLsn(start),
    compression: 'zstd',
    size: 1,
    sha256: '0'.repeat(64),
    validBytes,
    commits: 1,
    firstCommitTime: new Date(Date.UTC(2026, 0, 1, 0, n, 0)).toISOString(),
    lastCommitTime: new Date(Date.UTC(2026, 0, 1, 0, n, 30)).toISOString(),
  };
}

const backup = {
  id: 'B1',
  timeline: 1,
  startLsn: '0/1000028',
  endLsn: '0/1000100',
  endTime: '2026-01-01T00:01:00Z',
} as BackupRecord;

/** Timeline 1: segments 1..3 (3 cut at the switch 0/3800000); timeline 2: segments 3..5. */
function input(drop: (r: SegmentRecord) => boolean = () => false, history = true): ContinuityInput {
  const recorded = new Map([
    [1, [segment(1, 1), segment(1, 2), segment(1, 3, 0x800000)]],
    [2, [segment(2, 3), segment(2, 4), segment(2, 5)]],
  ]);
  const good: WalInventory = {
    segments: new Map([...recorded].map(([tli, list]) => [tli, list.filter((r) => !drop(r))])),
    partials: [],
    histories: history ? [2] : [],
  };
  return {
    backups: [backup],
    good,
    recorded,
    histories: history
      ? new Map([[2, parseTimelineHistory('1\t0/3800000\tno recovery target specified\n')]])
      : new Map(),
    historyPresent: new Set(history ? [2] : []),
    segmentSize: SEG,
  };
}

test('WAL that follows a timeline switch through the history file is continuous', () => {
  const result = checkWalContinuity(input());
  assert.deepEqual(result.problems, []);
  assert.deepEqual(result.walEnd, { timeline: 2, lsn: '0/6000000' });
  assert.equal(result.continuousTo.get('B1'), '0/6000000');
});

test('a segment missing on the new timeline is a PITR gap between two commit times', () => {
  const result = checkWalContinuity(input((r) => r.timeline === 2 && r.startLsn === '0/4000000'));
  assert.equal(result.problems.length, 1);
  const [gap] = result.problems;
  assert.equal(gap!.kind, 'wal-gap');
  assert.equal(gap!.object, 'wal/00000002/000000020000000000000004.zst');
  assert.equal(
    gap!.breaks,
    'PITR impossible between 2026-01-01T00:03:30.000Z (LSN 0/4000000) and 2026-01-01T00:05:00.000Z (LSN 0/5000000) (backups B1 restore only to before it)',
  );
  assert.equal(result.continuousTo.get('B1'), '0/4000000');
});

test('a segment missing inside the backup: a hole at its start, the backup named unrestorable', () => {
  const result = checkWalContinuity(input((r) => r.timeline === 1 && r.startLsn === '0/1000000'));
  assert.equal(result.continuousTo.get('B1'), '0/1000028', 'a hole right at its start');
  assert.match(result.problems[0]!.breaks, /^backup B1 unrestorable/);
  assert.equal(result.problems[0]!.object, 'wal/00000001/000000010000000000000001.zst');
});

test('the newest timeline’s history file missing is named with the backup it strands', () => {
  const result = checkWalContinuity(input(() => false, false));
  const missing = result.problems.find((p) => p.kind === 'missing');
  assert.equal(missing?.object, 'wal/history/00000002.history');
  assert.deepEqual(missing.backups, ['B1']);
});
