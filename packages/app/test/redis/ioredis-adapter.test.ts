import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Socket } from 'node:net';
import { Cluster, Redis } from 'ioredis';
import { fromIoredis } from '../../src/redis/ioredis-adapter.ts';
import {
  startRedis,
  startRedisCluster,
  type TestRedis,
  type TestRedisCluster,
} from '../../../../test/harness/redis.ts';

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

describe('ioredis adapter on a standalone server', { timeout: 60_000 }, () => {
  let server: TestRedis;
  before(async () => {
    server = await startRedis();
  });
  after(() => server.stop());

  test('commands sent in one tick leave in a few coalesced writes and each gets its own reply', async () => {
    const client = new Redis({ port: server.port, lazyConnect: true });
    const redis = fromIoredis(client);
    await redis.connect();
    try {
      for (let i = 0; i < 20; i += 1) await redis.set(`coalesce:${i}`, `value-${i}`);
      const socket = (client as unknown as { stream: Socket }).stream;
      // A corked socket hands its queued chunks to _writev in one go; otherwise _write per chunk.
      let writes = 0;
      const writev = socket._writev!.bind(socket);
      const write = socket._write.bind(socket);
      socket._writev = (chunks, callback) => {
        writes += 1;
        writev(chunks, callback);
      };
      socket._write = (chunk, encoding, callback) => {
        writes += 1;
        write(chunk, encoding, callback);
      };
      const replies = await Promise.all(
        Array.from({ length: 20 }, (_, i) => redis.getCancellable!(`coalesce:${i}`).promise),
      );
      assert.deepEqual(
        replies,
        Array.from({ length: 20 }, (_, i) => `value-${i}`),
      );
      // One write per command without coalescing (20 here, measured).
      assert.ok(writes >= 1 && writes <= 6, `20 GETs in ${writes} socket writes (batches of 8)`);
    } finally {
      await redis.quit();
    }
  });
});
