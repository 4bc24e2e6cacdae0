import type { Logger } from 'pino';
import { WardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import type { Compression } from '../pipeline/compression.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { ObjectSink } from '../pipeline/object-sink.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { StepRecorder, type StepReport } from '../util/step-recorder.ts';
import { receiveRdb } from './rdb-transfer.ts';
import {
  commitRedisBackup,
  listRedisBackups,
  newRedisBackupId,
  redisBackupPrefix,
  shardObjectKey,
  type RedisBackupRecord,
  type RedisShardRecord,
} from './redis-catalog.ts';
import { endpointOf, type RedisEndpoint } from './redis-endpoint.ts';
import { readInfo } from './redis-info.ts';
import { openRepositoryForRedis, removeRedisAttempt } from './redis-repository.ts';
import { RespConnection } from './resp-connection.ts';
import { parseClusterSlots, type ShardMaster } from './slot-map.ts';

export interface RedisBackupOptions {
  /** The standalone server, or any node of the cluster (`cluster: true`). */
  endpoint: RedisEndpoint;
  cluster?: boolean;
  /** This Redis's configured name, recorded for schedules and listings. */
  name?: string;
  store: ObjectStore;
  keys?: RepositoryKeys;
  compression?: Compression;
  /** Refuse a snapshot announced (or streamed) above this many bytes. */
  maxRdbBytes?: number;
  /** Ask for a diskless transfer (`REPLCONF capa eof`). */
  diskless?: boolean;
  logger?: Logger;
  signal?: AbortSignal;
}

export interface RedisBackupReport {
  backup: RedisBackupRecord;
  steps: StepReport[];
}

/**
 * Takes an RDB snapshot of a standalone Redis, or of every master of a Redis Cluster (with the
 * slot map), over the replication protocol, through the compress → encrypt → checksum pipeline
 * into `redis/<id>/`, and writes `redis/<id>/redis.json` last. A failure or cancellation on any
 * shard removes everything the attempt wrote: nothing half-committed.
 *
 * @example
 * const { backup } = await takeRedisBackup({ endpoint: parseRedisUrl('redis://10.0.0.5:6379'), store });
 */
export async function takeRedisBackup(options: RedisBackupOptions): Promise<RedisBackupReport> {
  const logger = options.logger ?? silentLogger;
  const compression = options.compression ?? 'zstd';
  const steps = new StepRecorder();
  const seed = options.endpoint;
  const { version, masters } = await steps.run(
    'connect',
    () => inspect(seed, options.cluster === true, options.signal),
    (s) => `Redis ${s.version}${s.masters ? `, cluster of ${s.masters.length} master(s)` : ''}`,
  );
  const repository = await openRepositoryForRedis(options.store, options.keys);
  const startTime = new Date();
  const id = newRedisBackupId(startTime, new Set((await listRedisBackups(repository)).map((b) => b.id)));
  const targets = masters
    ? masters.map((m, index) => ({
        name: `shard-${index}`,
        endpoint: endpointOf({ ...seed, host: m.host, port: m.port }),
        master: m,
      }))
    : [{ name: 'standalone', endpoint: seed, master: undefined as ShardMaster | undefined }];
  const shards: RedisShardRecord[] = [];
  try {
    for (const target of targets) {
      const shard = await steps.run(
        `snapshot ${target.name}`,
        async () => {
          const key = shardObjectKey(id, target.name, compression);
          const { object, form } = await snapshotInto(target.endpoint, key, compression, options);
          return {
            name: target.name,
            node: target.endpoint.display,
            ...(target.master ? { nodeId: target.master.id, slots: target.master.slots } : {}),
            transfer: form,
            object,
          };
        },
        (s) => `${s.node}: ${s.object.rawSize} bytes -> ${s.object.size} stored`,
      );
      shards.push(shard);
    }
  } catch (error) {
    await removeRedisAttempt(options.store, redisBackupPrefix(id));
    throw error;
  }
  const endTime = new Date();
  const record: RedisBackupRecord = {
    format: 1,
    id,
    kind: 'redis',
    source: seed.display,
    ...(options.name ? { name: options.name } : {}),
    topology: masters ? 'cluster' : 'standalone',
    redisVersion: version,
    compression,
    shards,
    startTime: startTime.toISOString(),
    endTime: endTime.toISOString(),
    durationMs: endTime.getTime() - startTime.getTime(),
  };
  await steps.run('commit', () => commitRedisBackup(repository, record));
  logger.info({ backup: id, shards: shards.length }, 'redis backup committed');
  return { backup: record, steps: steps.steps };
}

async function inspect(seed: RedisEndpoint, cluster: boolean, signal?: AbortSignal) {
  const connection = await RespConnection.open(seed, signal ? { signal } : {});
  try {
    const version = (await readInfo(connection, 'server')).get('redis_version') ?? 'unknown';
    const enabled = (await readInfo(connection, 'cluster')).get('cluster_enabled') === '1';
    if (enabled !== cluster) {
      throw new WardenError(
        'WARDEN_E_USAGE',
        enabled
          ? `${seed.display} is a Redis Cluster node: back up every master with --cluster`
          : `${seed.display} is not a Redis Cluster node: leave out --cluster`,
        { details: { peer: seed.display, clusterEnabled: enabled } },
      );
    }
    const masters = cluster
      ? parseClusterSlots(await connection.command('CLUSTER', 'SLOTS'), seed.display)
      : undefined;
    return { version: version.slice(0, 40), masters };
  } finally {
    connection.close();
  }
}

async function snapshotInto(
  endpoint: RedisEndpoint,
  key: string,
  compression: Compression,
  options: RedisBackupOptions,
) {
  const connection = await RespConnection.open(endpoint, options.signal ? { signal: options.signal } : {});
  const sink = new ObjectSink(
    options.store,
    key,
    compression,
    undefined,
    options.signal,
    options.keys?.recipients,
  );
  try {
    const transfer = await receiveRdb(connection, (chunk) => sink.write(chunk), {
      ...(options.maxRdbBytes !== undefined ? { maxBytes: options.maxRdbBytes } : {}),
      ...(options.diskless ? { diskless: true } : {}),
    });
    connection.close();
    if (options.signal?.aborted) throw new WardenError('WARDEN_E_ABORTED', 'Redis backup cancelled');
    return { object: await sink.finish(), form: transfer.form };
  } catch (error) {
    connection.close();
    await sink.abandon(error as Error);
    throw error;
  }
}
