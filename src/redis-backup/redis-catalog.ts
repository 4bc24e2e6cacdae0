import { WardenError } from '../errors.ts';
import { COMPRESSIONS, compressionExtension, type Compression } from '../pipeline/compression.ts';
import type { RecordSignature } from '../pipeline/signing/record-signature.ts';
import type { StoredObject } from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { checkTrusted, signedForWrite } from '../repository/record-trust.ts';
import type { Repository } from '../repository/repository.ts';
import { validateSlotCoverage } from './slot-map.ts';

/** One RDB snapshot of a backup: the standalone server's, or one cluster master's. */
export interface RedisShardRecord {
  /** `standalone`, or `shard-<n>` for the n-th master by its first slot. */
  name: string;
  /** The node it came from, without credentials (`redis://10.0.0.5:6379`). */
  node: string;
  /** Cluster node id of that master. */
  nodeId?: string;
  /** Slot ranges (inclusive) the master served at backup time. */
  slots?: Array<[number, number]>;
  /** How the master framed the snapshot (length header, or diskless end mark). */
  transfer: 'length' | 'eof-mark';
  object: StoredObject;
}

/**
 * `redis/<id>/redis.json`: the commit marker of a Redis backup. Written last, after every RDB
 * object it lists is durable; a `redis/<id>/` without it is an unfinished attempt, never listed.
 */
export interface RedisBackupRecord {
  format: 1;
  id: string;
  kind: 'redis';
  /** The seed address given to `--redis`, without credentials. */
  source: string;
  /** The configured name of this Redis (daemon schedules), when there is one. */
  name?: string;
  topology: 'standalone' | 'cluster';
  /** `redis_version` of the seed node. */
  redisVersion: string;
  compression: Compression;
  shards: RedisShardRecord[];
  startTime: string;
  endTime: string;
  durationMs: number;
  signature?: RecordSignature;
}

export const REDIS_PREFIX = 'redis/';
export const REDIS_RECORD_FILE = 'redis.json';
const ID = /^\d{8}-\d{6}R\d{0,3}$/;
const SHARD = /^(standalone|shard-\d{1,3})$/;

export function redisBackupPrefix(id: string): string {
  return `${REDIS_PREFIX}${id}/`;
}

export function redisRecordKey(id: string): string {
  return `${redisBackupPrefix(id)}${REDIS_RECORD_FILE}`;
}

export function shardObjectKey(id: string, shard: string, compression: Compression): string {
  return `${redisBackupPrefix(id)}${shard}.rdb${compressionExtension(compression)}`;
}

/** A new id: UTC start time with an `R` suffix, like 20261122-143005R. */
export function newRedisBackupId(now: Date, existing: ReadonlySet<string>): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  let id = `${stamp}R`;
  for (let n = 2; existing.has(id); n += 1) id = `${stamp}R${n}`;
  return id;
}

/** Committed Redis backups, oldest first. */
export async function listRedisBackups(repository: Repository): Promise<RedisBackupRecord[]> {
  const records: RedisBackupRecord[] = [];
  for (const key of await recordKeys(repository.store)) {
    const record = parseRedisRecord(await repository.store.getBuffer(key), key);
    checkTrusted(repository, key, record);
    records.push(record);
  }
  return records.sort((a, b) => a.startTime.localeCompare(b.startTime) || a.id.localeCompare(b.id));
}

export async function recordKeys(store: ObjectStore): Promise<string[]> {
  return (await store.list(REDIS_PREFIX)).filter(
    (k) => k.endsWith(`/${REDIS_RECORD_FILE}`) && k.split('/').length === 3,
  );
}

export async function getRedisBackup(repository: Repository, id: string): Promise<RedisBackupRecord> {
  const key = redisRecordKey(id);
  if (!ID.test(id) || !(await repository.store.stat(key))) {
    throw new WardenError(
      'WARDEN_E_REDIS_BACKUP_NOT_FOUND',
      `no Redis backup "${id.slice(0, 80)}" in ${repository.location}`,
      {
        hint: 'Run `warden redis list` to see the Redis backups.',
        details: { id: id.slice(0, 80) },
      },
    );
  }
  const record = parseRedisRecord(await repository.store.getBuffer(key), key);
  checkTrusted(repository, key, record);
  return record;
}

export async function commitRedisBackup(repository: Repository, record: RedisBackupRecord): Promise<void> {
  const key = redisRecordKey(record.id);
  await repository.store.putBuffer(
    key,
    Buffer.from(`${JSON.stringify(signedForWrite(repository, key, record), null, 2)}\n`),
  );
}

/**
 * Parses and checks a record read from the repository: its id matches its key, shard names are
 * plain (they become directory names on restore), every object lives in its own backup's
 * directory, and a cluster's slot map covers every slot once.
 */
export function parseRedisRecord(data: Buffer, key: string): RedisBackupRecord {
  try {
    const record = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data)) as RedisBackupRecord;
    if (record.format !== 1 || record.kind !== 'redis') throw new Error(`format ${String(record.format)}`);
    if (typeof record.id !== 'string' || !ID.test(record.id) || key !== redisRecordKey(record.id))
      throw new Error('its id does not match its name');
    if (!COMPRESSIONS.includes(record.compression))
      throw new Error(`unknown compression ${String(record.compression)}`);
    if (record.topology !== 'standalone' && record.topology !== 'cluster')
      throw new Error('unknown topology');
    if (!Array.isArray(record.shards) || record.shards.length === 0 || record.shards.length > 1000)
      throw new Error('no shards');
    const names = new Set<string>();
    for (const shard of record.shards) {
      if (typeof shard.name !== 'string' || !SHARD.test(shard.name) || names.has(shard.name))
        throw new Error(`bad shard name ${JSON.stringify(shard.name)}`);
      names.add(shard.name);
      const object = shard.object;
      if (!object || object.key !== shardObjectKey(record.id, shard.name, record.compression))
        throw new Error(`shard ${shard.name} names an object outside its backup`);
      if (
        !Number.isSafeInteger(object.size) ||
        !Number.isSafeInteger(object.rawSize) ||
        !/^[0-9a-f]{64}$/.test(String(object.sha256))
      ) {
        throw new Error(`shard ${shard.name} has a malformed object entry`);
      }
    }
    if (
      record.topology === 'standalone' &&
      (record.shards.length !== 1 || record.shards[0]!.name !== 'standalone')
    )
      throw new Error('a standalone backup holds one shard');
    if (record.topology === 'cluster') {
      if (
        !record.shards.every(
          (s) => Array.isArray(s.slots) && s.slots.every((r) => Array.isArray(r) && r.length === 2),
        )
      )
        throw new Error('a cluster shard without slots');
      validateSlotCoverage(
        record.shards.map((s) => s.slots!),
        key,
      );
    }
    return record;
  } catch (cause) {
    throw new WardenError('WARDEN_E_REPO_FORMAT', `${key} cannot be read: ${(cause as Error).message}`, {
      details: { object: key },
      cause,
    });
  }
}
