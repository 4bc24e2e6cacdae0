import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { WardenError } from '../../src/errors.ts';
import { keySlot } from '../../src/redis-backup/key-slot.ts';
import { parseRedisRecord } from '../../src/redis-backup/redis-catalog.ts';
import type { RespReply } from '../../src/redis-backup/resp-reply.ts';
import { parseClusterSlots } from '../../src/redis-backup/slot-map.ts';

const ID_A = 'a'.repeat(40);
const ID_B = 'b'.repeat(40);
const node = (host: string, port: number, id: string): RespReply => [
  Buffer.from(host),
  port,
  Buffer.from(id),
];
const entry = (start: number, end: number, master: RespReply): RespReply => [start, end, master];
const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return 'accepted';
  } catch (error) {
    return (error as WardenError).code;
  }
};

test('CLUSTER SLOTS becomes masters with their sorted ranges', () => {
  const masters = parseClusterSlots(
    [
      entry(8192, 16383, node('10.0.0.2', 7001, ID_B)),
      entry(0, 100, node('10.0.0.1', 7000, ID_A)),
      entry(101, 8191, node('10.0.0.1', 7000, ID_A)),
    ],
    'test',
  );
  assert.deepEqual(
    masters.map((m) => [m.host, m.port, m.slots]),
    [
      [
        '10.0.0.1',
        7000,
        [
          [0, 100],
          [101, 8191],
        ],
      ],
      ['10.0.0.2', 7001, [[8192, 16383]]],
    ],
  );
});

test('a slot map that is not whole, overlaps, or names odd hosts, ports or ids is refused', () => {
  const a = node('10.0.0.1', 7000, ID_A);
  const parse = (reply: RespReply) => () => parseClusterSlots(reply, 'test');
  assert.equal(codeOf(parse([entry(0, 16000, a)])), 'WARDEN_E_REDIS_SLOT_MAP');
  assert.equal(
    codeOf(parse([entry(0, 16383, a), entry(5, 5, node('h', 1, ID_B))])),
    'WARDEN_E_REDIS_SLOT_MAP',
  );
  assert.equal(codeOf(parse([entry(0, 16384, a)])), 'WARDEN_E_REDIS_SLOT_MAP');
  assert.equal(codeOf(parse([entry(10, 5, a)])), 'WARDEN_E_REDIS_SLOT_MAP');
  assert.equal(
    codeOf(parse([entry(0, 16383, a), entry(16000, 16383, node('h', 1, ID_B))])),
    'WARDEN_E_REDIS_SLOT_MAP',
  );
  assert.equal(codeOf(parse([entry(0, 16383, node('../../etc', 7000, ID_A))])), 'WARDEN_E_REDIS_SLOT_MAP');
  assert.equal(codeOf(parse([entry(0, 16383, node('h@evil', 7000, ID_A))])), 'WARDEN_E_REDIS_SLOT_MAP');
  assert.equal(codeOf(parse([entry(0, 16383, node('', 7000, ID_A))])), 'WARDEN_E_REDIS_SLOT_MAP');
  assert.equal(codeOf(parse([entry(0, 16383, node('h', 70000, ID_A))])), 'WARDEN_E_REDIS_SLOT_MAP');
  assert.equal(codeOf(parse([entry(0, 16383, node('h', 7000, 'x'))])), 'WARDEN_E_REDIS_SLOT_MAP');
  assert.equal(
    codeOf(parse([entry(0, 100, a), entry(101, 16383, node('other', 7000, ID_A))])),
    'WARDEN_E_REDIS_SLOT_MAP',
  );
  assert.equal(codeOf(parse(Buffer.from('nope'))), 'WARDEN_E_REDIS_SLOT_MAP');
  assert.equal(codeOf(parse([entry(0, 16383, a)])), 'accepted');
});

test('key slots follow the cluster specification, hash tags included', () => {
  // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
  assert.equal(keySlot(Buffer.from('123456789')), 12739);
  assert.equal(keySlot(Buffer.from('foo')), 12182);
  assert.equal(keySlot(Buffer.from('{user1000}.following')), keySlot(Buffer.from('user1000')));
  assert.equal(keySlot(Buffer.from('foo{}{bar}')), keySlot(Buffer.from('foo{}{bar}')));
  assert.notEqual(keySlot(Buffer.from('foo{}{bar}')), keySlot(Buffer.from('bar')));
});

const KEY = 'redis/20261122-143005R/redis.json';
const sha = 'c'.repeat(64);
const good = () => ({
  format: 1,
  id: '20261122-143005R',
  kind: 'redis',
  source: 'redis://h:6379',
  topology: 'standalone',
  redisVersion: '7.0.15',
  compression: 'zstd',
  shards: [
    {
      name: 'standalone',
      node: 'redis://h:6379',
      transfer: 'length',
      object: { key: 'redis/20261122-143005R/standalone.rdb.zst', size: 1, sha256: sha, rawSize: 1 },
    },
  ],
  startTime: '',
  endTime: '',
  durationMs: 0,
});
const parse =
  (record: unknown, key = KEY) =>
  () =>
    parseRedisRecord(Buffer.from(JSON.stringify(record)), key);

test('a record from the repository must name itself, plain shard names and its own objects', () => {
  assert.equal(codeOf(parse(good())), 'accepted');
  assert.equal(codeOf(parse(good(), 'redis/20261122-143006R/redis.json')), 'WARDEN_E_REPO_FORMAT');
  // A name that would climb out of the restore directory, even with an object key to match it.
  const climbing = {
    ...good(),
    topology: 'cluster',
    shards: [
      {
        ...good().shards[0]!,
        name: '../../etc',
        slots: [[0, 16383]],
        object: { ...good().shards[0]!.object, key: 'redis/20261122-143005R/../../etc.rdb.zst' },
      },
    ],
  };
  assert.equal(codeOf(parse(climbing)), 'WARDEN_E_REPO_FORMAT');
  const elsewhere = good();
  elsewhere.shards[0]!.object.key = 'backups/x/base.tar.zst';
  assert.equal(codeOf(parse(elsewhere)), 'WARDEN_E_REPO_FORMAT');
  const cluster = {
    ...good(),
    topology: 'cluster',
    shards: [
      {
        ...good().shards[0]!,
        name: 'shard-0',
        slots: [[0, 100]],
        object: { ...good().shards[0]!.object, key: 'redis/20261122-143005R/shard-0.rdb.zst' },
      },
    ],
  };
  assert.equal(codeOf(parse(cluster)), 'WARDEN_E_REPO_FORMAT');
  cluster.shards[0]!.slots = [[0, 16383]];
  assert.equal(codeOf(parse(cluster)), 'accepted');
});
