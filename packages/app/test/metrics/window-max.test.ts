import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WindowMax } from '../../src/metrics/window-max.ts';

test('the window max keeps a value for two to three rotations, then forgets it (Micrometer TimeWindowMax)', () => {
  const t0 = 1_000_000;
  const max = new WindowMax(t0, 20_000);
  max.record(5, t0);
  max.record(3, t0 + 1_000);
  assert.equal(max.read(t0 + 1_000), 5);
  assert.equal(max.read(t0 + 39_999), 5, 'still within two rotations');
  max.record(2, t0 + 45_000);
  assert.equal(max.read(t0 + 59_999), 5, 'within three rotations');
  assert.equal(max.read(t0 + 60_000), 2, 'the 5 is gone; the later 2 is not');
  assert.equal(max.read(t0 + 200_000), 0, 'a long quiet period clears everything');
  max.record(7, t0 + 200_001);
  assert.equal(max.read(t0 + 200_002), 7);
});
