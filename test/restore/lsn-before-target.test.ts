import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BackupRecord } from '../../src/repository/backup-catalog.ts';
import type { SegmentRecord, WalInventory } from '../../src/repository/wal-archive.ts';
import { planRestore } from '../../src/restore/restore-planner.ts';
import { formatLsn, parseLsn, segmentName } from '../../src/wal/lsn.ts';

// What a drill asks for: the WAL a repository was durable up to at the simulated loss.

const SEG = 16 * 1024 * 1024;
const seg = (n: number) => BigInt(n * SEG);
const minute = (n: number, s = 0) => new Date(Date.UTC(2026, 0, 1, 0, n, s));

const backup = {
  id: 'b',
  kind: 'full',
  timeline: 1,
  startLsn: formatLsn(seg(2) + 0x28n),
  endLsn: formatLsn(seg(2) + 0x200n),
  startTime: minute(2, 1).toISOString(),
  endTime: minute(2, 2).toISOString(),
} as BackupRecord;

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

/** Segments 2..5 archived: WAL is continuous to the end of segment 5. */
const inventory = (): WalInventory => ({
  segments: new Map([[1, [2, 3, 4, 5].map(segment)]]),
  partials: [],
  histories: [],
});

const segmentsOf = (plan: ReturnType<typeof planRestore>) =>
  plan.segments.map((s) => Number(parseLsn(s.startLsn) / seg(1)));

test('an LSN target with before stops before the first record at or after it (inclusive off)', () => {
  const plan = planRestore({ kind: 'lsn', lsn: seg(4) + 0x100n, before: true }, [backup], inventory(), SEG);
  assert.equal(plan.recovery.recovery_target_lsn, formatLsn(seg(4) + 0x100n));
  assert.equal(plan.recovery.recovery_target_inclusive, 'off');
  // One segment past the position, for a record that straddles it.
  assert.deepEqual(segmentsOf(plan), [2, 3, 4, 5]);
  const inclusive = planRestore({ kind: 'lsn', lsn: seg(4) + 0x100n }, [backup], inventory(), SEG);
  assert.equal(inclusive.recovery.recovery_target_inclusive, undefined);
});

test('an LSN target with before at the end of the WAL replays all of it, with no target to miss', () => {
  const plan = planRestore({ kind: 'lsn', lsn: seg(6), before: true }, [backup], inventory(), SEG);
  assert.equal(plan.recovery.recovery_target_lsn, undefined);
  assert.equal(plan.recovery.recovery_target_inclusive, undefined);
  assert.deepEqual(segmentsOf(plan), [2, 3, 4, 5]);
});
