import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BackupRecord } from '../../src/repository/backup-catalog.ts';
import type { SegmentRecord, WalInventory } from '../../src/repository/wal-archive.ts';
import { assessWalGaps, type WalGapRecord } from '../../src/repository/wal-gap-incidents.ts';

// How status and verify judge a recorded WAL gap: failing until a full backup that started after
// it completed, then listed as resolved until retention removed the WAL before it.

const gap: WalGapRecord = {
  format: 1,
  timeline: 1,
  from: '0/3000400',
  to: '0/6000000',
  detectedAt: '2026-12-06T00:00:00.000Z',
  cause: 'slot-recreated',
};

function backup(id: string, kind: 'full' | 'incremental', startLsn: string): BackupRecord {
  return { id, kind, startLsn } as BackupRecord;
}

function walFrom(startLsn: string): WalInventory {
  const record = { timeline: 1, startLsn, validBytes: 16 * 1024 * 1024 } as SegmentRecord;
  return { segments: new Map([[1, [record]]]), partials: [], histories: [] };
}

test('a gap is unresolved without a full backup that started after its end', () => {
  const backups = [backup('before', 'full', '0/2000028'), backup('incr', 'incremental', '0/7000028')];
  const [state] = assessWalGaps([gap], backups, walFrom('0/1000000'));
  assert.equal(state?.state, 'unresolved');
  assert.equal(state?.resolvedBy, undefined);
  // A full backup that started inside the gap still needs WAL the repository lacks.
  const [inside] = assessWalGaps([gap], [backup('inside', 'full', '0/5000028')], walFrom('0/1000000'));
  assert.equal(inside?.state, 'unresolved');
});

test('a full backup after the gap resolves it; once the WAL before the gap expired it is obsolete', () => {
  const backups = [backup('before', 'full', '0/2000028'), backup('after', 'full', '0/6000028')];
  const [resolved] = assessWalGaps([gap], backups, walFrom('0/1000000'));
  assert.deepEqual([resolved?.state, resolved?.resolvedBy], ['resolved', 'after']);
  const [obsolete] = assessWalGaps([gap], backups.slice(1), walFrom('0/6000000'));
  assert.deepEqual([obsolete?.state, obsolete?.resolvedBy], ['obsolete', 'after']);
});
