import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JobLines } from '../../src/cli/job-lines.ts';
import type { JobRun } from '../../src/scheduler/job-state.ts';

const run = (finishedAt: string): JobRun => ({
  slot: finishedAt,
  startedAt: finishedAt,
  finishedAt,
  daemon: 'host:1:a',
  status: 'succeeded',
});

test('serve marks runs of an earlier daemon as earlier and prints each run once', () => {
  const lines = new JobLines(new Date('2026-12-06T10:00:00Z'));
  const view = (backupAt: string) => ({
    clusters: [
      {
        name: 'main',
        jobs: [{ name: 'backup', lastRun: run(backupAt) }, { name: 'drill' }],
      },
    ],
  });
  const first = lines.next(view('2026-12-06T09:00:00.000Z'));
  assert.equal(first.length, 1);
  assert.match(first[0]!, /backup: succeeded \(earlier run, before this start\)$/);
  assert.deepEqual(lines.next(view('2026-12-06T09:00:00.000Z')), []);
  const fresh = lines.next(view('2026-12-06T10:00:05.000Z'));
  assert.equal(fresh.length, 1);
  assert.doesNotMatch(fresh[0]!, /earlier/);
});
