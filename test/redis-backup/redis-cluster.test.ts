import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { keySlot } from '../../src/redis-backup/key-slot.ts';
import { takeRedisBackup } from '../../src/redis-backup/redis-backup.ts';
import { loadRedisBackup } from '../../src/redis-backup/redis-load.ts';
import { restoreRedisToDir } from '../../src/redis-backup/redis-restore-dir.ts';
import { RespConnection } from '../../src/redis-backup/resp-connection.ts';
import { parseClusterSlots, type ShardMaster } from '../../src/redis-backup/slot-map.ts';
import { startTempRedisServer } from '../../src/redis-backup/temp-redis-server.ts';
import { rejectsWithCode } from '../faults/helpers.ts';
import { startRedisCluster, type TestRedisCluster } from '../harness/redis.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { loopback, seedKeys, snapshotKeys, type KeyState } from './redis-fixtures.ts';

let source: TestRedisCluster;
let target: TestRedisCluster;
let work: string;
let store: FsObjectStore;

async function mastersOf(cluster: TestRedisCluster): Promise<ShardMaster[]> {
  const connection = await RespConnection.open(loopback(cluster.ports[0]!));
  try {
    return parseClusterSlots(await connection.command('CLUSTER', 'SLOTS'), 'test');
  } finally {
    connection.close();
  }
}

async function allKeys(cluster: TestRedisCluster): Promise<Map<string, KeyState>> {
  const all = new Map<string, KeyState>();
  for (const master of await mastersOf(cluster))
    for (const [key, state] of await snapshotKeys(master.port)) all.set(key, state);
  return all;
}

before(async () => {
  [source, target] = await Promise.all([startRedisCluster(), startRedisCluster()]);
  work = await tempDir('redis-cluster-backup');
  store = new FsObjectStore(path.join(work, 'repo'));
  const masters = await mastersOf(source);
  const owner = (slot: number) => masters.find((m) => m.slots.some(([a, b]) => slot >= a && slot <= b))!.port;
  await seedKeys([], 900, owner);
});
after(async () => {
  await Promise.all([source?.stop(), target?.stop()]);
});

test('a cluster backup takes every master with the slot map and loads --to a fresh cluster with every key and TTL', async () => {
  const original = await allKeys(source);
  assert.equal(original.size, 900);
  const { backup } = await takeRedisBackup({
    endpoint: loopback(source.ports[1]!),
    cluster: true,
    store,
    diskless: true,
  });
  assert.equal(backup.topology, 'cluster');
  assert.equal(backup.shards.length, 3);
  assert.deepEqual(
    backup.shards.map((s) => s.transfer),
    ['eof-mark', 'eof-mark', 'eof-mark'],
  );
  const covered = backup.shards.flatMap((s) => s.slots!).reduce((sum, [a, b]) => sum + b - a + 1, 0);
  assert.equal(covered, 16384);

  const report = await loadRedisBackup({ store, backupId: backup.id, target: loopback(target.ports[2]!) });
  assert.equal(report.keys, 900);
  const loaded = await allKeys(target);
  assert.deepEqual([...loaded.keys()].sort(), [...original.keys()].sort());
  for (const [key, state] of original) {
    assert.equal(loaded.get(key)!.value, state.value, `${key} has its value`);
    if (state.pttl === -1) assert.equal(loaded.get(key)!.pttl, -1);
    else
      assert.ok(
        loaded.get(key)!.pttl > 0 && loaded.get(key)!.pttl <= state.pttl + 1000,
        `${key} keeps its TTL`,
      );
  }
  // Now it holds keys: a second load is refused.
  await rejectsWithCode(
    loadRedisBackup({ store, backupId: backup.id, target: loopback(target.ports[0]!) }),
    'WARDEN_E_REDIS_TARGET_NOT_EMPTY',
  );
});

test("a cluster backup restores to one directory per shard with the slot map, each holding its slots' keys", async () => {
  const { backup } = await takeRedisBackup({ endpoint: loopback(source.ports[0]!), cluster: true, store });
  assert.deepEqual(
    backup.shards.map((s) => s.transfer),
    ['length', 'length', 'length'],
  );
  const dir = path.join(work, 'restored');
  await restoreRedisToDir({ store, backupId: backup.id, targetDir: dir });
  assert.deepEqual((await readdir(dir)).sort(), [
    'README.txt',
    'shard-0',
    'shard-1',
    'shard-2',
    'slot-map.json',
  ]);
  const map = JSON.parse(await readFile(path.join(dir, 'slot-map.json'), 'utf8')) as {
    shards: Array<{ shard: string; slots: Array<[number, number]> }>;
  };
  const original = await allKeys(source);
  const seen = new Set<string>();
  for (const shard of map.shards) {
    const server = await startTempRedisServer(path.join(dir, shard.shard));
    try {
      for (const [key, state] of await snapshotKeys(server.port)) {
        const slot = keySlot(Buffer.from(key));
        assert.ok(
          shard.slots.some(([a, b]) => slot >= a && slot <= b),
          `${key} is in ${shard.shard}'s slots`,
        );
        assert.equal(state.value, original.get(key)!.value);
        seen.add(key);
      }
    } finally {
      await server.stop();
    }
  }
  assert.equal(seen.size, original.size);
});
