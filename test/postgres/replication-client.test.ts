import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type pg from 'pg';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { ReplicationClient } from '../../src/postgres/replication-client.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster();
});
after(async () => cluster?.stop());

test('a replication connection running many commands keeps one end listener, not one per command', async () => {
  const client = await ReplicationClient.connect({ ...connectionFromUrl(cluster.url()), tls: 'disable' });
  try {
    const driver = (client as unknown as { client: pg.Client }).client;
    const baseline = driver.listenerCount('end');
    for (let i = 0; i < 25; i += 1) {
      await client.identifySystem();
      await client.show('wal_segment_size');
    }
    // A receiver's connection lives for days across reconnect-free sessions: one listener per
    // command grew without bound (Node warned at 11).
    assert.equal(driver.listenerCount('end'), baseline);
    // A failed command unhooks too.
    await assert.rejects(client.show('no_such_setting'));
    assert.equal(driver.listenerCount('end'), baseline);
  } finally {
    await client.close();
  }
});
