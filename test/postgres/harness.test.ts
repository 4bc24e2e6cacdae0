import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startCluster } from '../harness/postgres.ts';

test('harness starts a throwaway cluster with replication enabled and removes it', async () => {
  const cluster = await startCluster();
  try {
    const [row] = await cluster.query<{ wal_level: string }>('SHOW wal_level');
    assert.equal(row?.wal_level, 'replica');
  } finally {
    await cluster.stop();
  }
  assert.equal(cluster.instance.isRunning(), false);
});
