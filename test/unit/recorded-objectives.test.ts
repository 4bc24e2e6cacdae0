import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { resolveDaemonPlan, type ClusterPlan } from '../../src/daemon/daemon-config.ts';
import {
  chooseObjectives,
  OBJECTIVES_KEY,
  readRecordedObjectives,
  recordObjectives,
} from '../../src/daemon/recorded-objectives.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';
import type { DrillReport } from '../../src/verify/drill.ts';

function plan(flags: { profile?: string; rpo?: string } = {}, section = {}): ClusterPlan {
  return resolveDaemonPlan({
    section,
    baseDir: os.tmpdir(),
    defaultCluster: { repository: { path: os.tmpdir() } },
    retention: DEFAULT_RETENTION_POLICY,
    flags,
    env: {},
  }).clusters[0]!;
}

const HOUR = 3_600_000;

test('configured objectives win and name their source; defaults are marked as such', () => {
  assert.deepEqual(
    [
      chooseObjectives(plan({ profile: 'uat' }), {}).origin,
      chooseObjectives(plan({ profile: 'uat' }), {}).source,
    ],
    ['config', '--profile'],
  );
  const fromFile = chooseObjectives(plan({}, { objectives: { rpo: '5m' } }), {});
  assert.equal(fromFile.origin, 'config');
  assert.equal(fromFile.rpoMs, 300_000);
  assert.equal(chooseObjectives(plan(), {}).origin, 'default');
});

test('without configuration, the newer of the daemon record and the last drill decides', () => {
  const daemon = {
    format: 1 as const,
    profile: 'uat' as const,
    rtoMs: 8 * HOUR,
    rpoMs: 24 * HOUR,
    recordedAt: '2026-12-01T00:00:00.000Z',
    recordedBy: 'db1:1',
  };
  const drill = {
    profile: 'dev',
    startedAt: '2026-12-02T00:00:00.000Z',
    objectives: { rtoMs: 24 * HOUR, rpoMs: 48 * HOUR },
  } as DrillReport;
  assert.equal(chooseObjectives(plan(), { daemon }).profile, 'uat');
  const newerDrill = chooseObjectives(plan(), { daemon, drill });
  assert.deepEqual([newerDrill.origin, newerDrill.profile, newerDrill.rtoMs], ['drill', 'dev', 24 * HOUR]);
  const olderDrill = chooseObjectives(plan(), {
    daemon,
    drill: { ...drill, startedAt: '2026-11-30T00:00:00.000Z' },
  });
  assert.equal(olderDrill.origin, 'daemon');
});

test('the record is written once per change, and a malformed one counts as absent', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-objectives-'));
  try {
    const store = new FsObjectStore(dir);
    assert.equal(await recordObjectives(store, plan({ profile: 'uat' })), true);
    assert.equal(await recordObjectives(store, plan({ profile: 'uat' })), false);
    assert.equal((await readRecordedObjectives(store))?.profile, 'uat');
    await store.putBuffer(OBJECTIVES_KEY, Buffer.from('{"format":1,"profile":"bogus","rtoMs":1,"rpoMs":1}'));
    assert.equal(await readRecordedObjectives(store), undefined);
    await store.putBuffer(OBJECTIVES_KEY, Buffer.from('not json'));
    assert.equal(await readRecordedObjectives(store), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
