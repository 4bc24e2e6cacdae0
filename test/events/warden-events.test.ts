import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WardenEvents, type WardenEvent } from '../../src/events/warden-events.ts';

const failed = {
  cluster: 'main',
  kind: 'full' as const,
  at: '2026-12-06T00:00:00.000Z',
  durationMs: 12,
  error: { code: 'WARDEN_E_REPO_IO', message: 'repository unreachable' },
};

test('listeners of an event receive its payload, in subscription order, until they unsubscribe', () => {
  const events = new WardenEvents();
  const seen: string[] = [];
  const offFirst = events.on('backup.failed', (e) => seen.push(`first ${e.error.code}`));
  events.on('backup.failed', (e) => seen.push(`second ${e.cluster}`));
  events.on('backup.succeeded', () => seen.push('wrong event'));
  events.emit('backup.failed', failed);
  offFirst();
  events.emit('backup.failed', failed);
  assert.deepEqual(seen, ['first WARDEN_E_REPO_IO', 'second main', 'second main']);
});

test('a listener that throws is reported and does not stop the others or the publisher', () => {
  const errors: string[] = [];
  const events = new WardenEvents((error, name) => errors.push(`${name}: ${(error as Error).message}`));
  const seen: WardenEvent[] = [];
  events.on('backup.failed', () => {
    throw new Error('broken listener');
  });
  events.onAny((event) => seen.push(event));
  assert.doesNotThrow(() => events.emit('backup.failed', failed));
  assert.deepEqual(errors, ['backup.failed: broken listener']);
  assert.deepEqual(seen, [{ name: 'backup.failed', payload: failed }]);
});
