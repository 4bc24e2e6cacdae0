import assert from 'node:assert/strict';
import { test } from 'node:test';
import { check, cycles, readGraph, upwardImports, type ModuleGraph } from '../../scripts/deps.mjs';

// The layer rule as code: the same check `npm run lint` runs (scripts/deps.mjs --check).

test('src/ has no import cycle and no upward import beyond the recorded baseline', () => {
  assert.deepEqual(check(readGraph()), []);
});

test('the check catches an upward import, a type-only one included, and an import out of a folder no layer lists', () => {
  const graph: ModuleGraph = {
    modules: ['verify/drill.ts', 'daemon/heartbeat.ts', 'newfolder/cache.ts', 'backup/base-backup.ts'],
    edges: [
      { from: 'verify/drill.ts', to: 'daemon/heartbeat.ts', typeOnly: true },
      { from: 'newfolder/cache.ts', to: 'backup/base-backup.ts', typeOnly: false },
    ],
  };
  assert.deepEqual(
    upwardImports(graph).map((u) => u.key),
    ['verify/drill.ts -> daemon/heartbeat.ts', 'newfolder/cache.ts -> backup/base-backup.ts'],
  );
  assert.equal(check(graph).filter((p) => p.startsWith('upward import:')).length, 2);
});

test('the check catches a two-file cycle inside one folder, and a longer one', () => {
  const graph: ModuleGraph = {
    modules: ['retention/gfs.ts', 'retention/plan-expiry.ts', 'backup/a.ts', 'backup/b.ts', 'backup/c.ts'],
    edges: [
      { from: 'retention/gfs.ts', to: 'retention/plan-expiry.ts', typeOnly: true },
      { from: 'retention/plan-expiry.ts', to: 'retention/gfs.ts', typeOnly: false },
      { from: 'backup/a.ts', to: 'backup/b.ts', typeOnly: false },
      { from: 'backup/b.ts', to: 'backup/c.ts', typeOnly: false },
      { from: 'backup/c.ts', to: 'backup/a.ts', typeOnly: false },
    ],
  };
  assert.deepEqual(cycles(graph).sort(), [
    ['backup/a.ts', 'backup/b.ts', 'backup/c.ts'],
    ['retention/gfs.ts', 'retention/plan-expiry.ts'],
  ]);
});
