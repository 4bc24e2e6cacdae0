import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Cluster } from 'ioredis';
import { fromIoredis } from '../../../src/datalayer/redis/ioredis-adapter.ts';
import { startRedisCluster, type TestRedisCluster } from '../../harness/redis.ts';

describe('ioredis adapter on Cluster', { timeout: 60_000 }, () => {
  let cluster: TestRedisCluster;

  before(async () => {
    cluster = await startRedisCluster();
  });
  after(() => cluster.stop());

  test('connect() opens every master connection, so a burst on a fresh client is not bounced', async () => {
    // the data layer's settings: lazy, no offline queue
    const client = new Cluster([...cluster.nodes], {
      lazyConnect: true,
      enableOfflineQueue: false,
      redisOptions: { lazyConnect: true, commandTimeout: 5000 },
    });
    client.on('error', () => {});
    const redis = fromIoredis(client);
    try {
      await redis.connect();
      const masters = client.nodes('master');
      assert.equal(masters.length, 3);
      assert.deepEqual(
        masters.map((node) => node.status),
        ['ready', 'ready', 'ready'],
      );
      // With lazy node connections, all but the first of these per node were rejected with
      // "Connection is closed" while it connected, parked for retryDelayOnFailover (100 ms) and
      // re-sent to a random node, which answered MOVED.
      const keys = Array.from({ length: 300 }, (_, i) => `burst:${i}`);
      await Promise.all(keys.map((key) => redis.set(key, key)));
      assert.deepEqual(await Promise.all(keys.map((key) => redis.get(key))), keys);
    } finally {
      await redis.quit();
    }
  });
});
