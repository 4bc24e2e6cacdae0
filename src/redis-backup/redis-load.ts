import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { WardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { StepRecorder, type StepReport } from '../util/step-recorder.ts';
import { openLoadTarget, type LoadTarget } from './load-target.ts';
import { writeShardRdb } from './rdb-file.ts';
import { getRedisBackup } from './redis-catalog.ts';
import type { RedisEndpoint } from './redis-endpoint.ts';
import { keyspace } from './redis-info.ts';
import type { RespConnection } from './resp-connection.ts';
import { redisError } from './resp-connection.ts';
import { RespError } from './resp-reply.ts';
import { startTempRedisServer } from './temp-redis-server.ts';

export interface RedisLoadOptions {
  store: ObjectStore;
  keys?: RepositoryKeys;
  backupId: string;
  /** The running, empty standalone server or any node of an empty cluster. */
  target: RedisEndpoint;
  /** Keys per SCAN page and per pipelined batch. */
  batch?: number;
  logger?: Logger;
  signal?: AbortSignal;
}

export interface RedisLoadReport {
  backupId: string;
  target: string;
  keys: number;
  steps: StepReport[];
}

/**
 * Loads a Redis backup into a running, empty Redis (standalone or cluster) with DUMP/RESTORE
 * semantics: each shard's verified RDB is served by a private redis-server on a loopback port,
 * whose keys are read with SCAN + DUMP + PTTL and restored into the target (routed by slot for a
 * cluster) with their remaining time to live. Parsing the RDB format here would have to follow
 * every Redis version's encodings; the server that wrote it reads it best.
 *
 * @example
 * await loadRedisBackup({ store, backupId: '20261122-143005R', target: parseRedisUrl('redis://10.0.0.9:6379') });
 */
export async function loadRedisBackup(options: RedisLoadOptions): Promise<RedisLoadReport> {
  const logger = options.logger ?? silentLogger;
  const steps = new StepRecorder();
  const repository = await Repository.open(options.store, options.keys);
  const record = await steps.run(
    'read record',
    () => getRedisBackup(repository, options.backupId),
    (r) => `${r.topology}, ${r.shards.length} shard(s)`,
  );
  const target = await steps.run(
    'check target is empty',
    () => openLoadTarget(options.target),
    (t) => (t.cluster ? `cluster of ${t.connections.length} master(s)` : 'standalone'),
  );
  let total = 0;
  const work = await mkdtemp(path.join(os.tmpdir(), 'warden-redis-load-'));
  try {
    for (const shard of record.shards) {
      const loaded = await steps.run(
        `load ${shard.name}`,
        async () => {
          const dir = path.join(work, shard.name);
          await mkdir(dir, { mode: 0o700 });
          await writeShardRdb(
            options.store,
            record,
            shard,
            options.keys,
            path.join(dir, 'dump.rdb'),
            options.signal,
          );
          const server = await startTempRedisServer(dir);
          try {
            const source = await server.connect();
            try {
              return await copyKeys(source, target, options.batch ?? 500, options.signal);
            } finally {
              source.close();
            }
          } finally {
            await server.stop();
            await rm(dir, { recursive: true, force: true });
          }
        },
        (n) => `${n} key(s)`,
      );
      total += loaded;
    }
  } finally {
    target.close();
    await rm(work, { recursive: true, force: true });
  }
  logger.info({ backup: record.id, keys: total }, 'redis backup loaded');
  return { backupId: record.id, target: options.target.display, keys: total, steps: steps.steps };
}

async function copyKeys(
  source: RespConnection,
  target: LoadTarget,
  batch: number,
  signal?: AbortSignal,
): Promise<number> {
  let copied = 0;
  for (const db of [...(await keyspace(source)).keys()].sort((a, b) => a - b)) {
    if (db !== 0 && target.cluster) {
      throw new WardenError(
        'WARDEN_E_USAGE',
        `the backup holds keys in database ${db}, and a Redis Cluster has database 0 only`,
        {
          hint: 'Load it into a standalone server instead.',
          details: { database: db },
        },
      );
    }
    await source.command('SELECT', db);
    if (!target.cluster) await target.connections[0]!.command('SELECT', db);
    let cursor = '0';
    do {
      if (signal?.aborted) throw new WardenError('WARDEN_E_ABORTED', 'Redis load cancelled');
      const page = await source.command('SCAN', cursor, 'COUNT', batch);
      if (!Array.isArray(page) || !Buffer.isBuffer(page[0]) || !Array.isArray(page[1]))
        throw new WardenError('WARDEN_E_PROTOCOL', 'SCAN answered with something else than [cursor, keys]');
      cursor = page[0].toString('latin1');
      const keys = page[1].filter((k): k is Buffer => Buffer.isBuffer(k));
      copied += await copyBatch(source, target, keys);
    } while (cursor !== '0');
  }
  return copied;
}

async function copyBatch(source: RespConnection, target: LoadTarget, keys: Buffer[]): Promise<number> {
  if (keys.length === 0) return 0;
  const replies = await source.pipeline(
    keys.flatMap((key) => [
      ['DUMP', key],
      ['PTTL', key],
    ]),
  );
  const perTarget = new Map<RespConnection, Array<Array<string | Buffer | number>>>();
  let count = 0;
  keys.forEach((key, index) => {
    const payload = replies[index * 2];
    const ttl = replies[index * 2 + 1];
    if (payload instanceof RespError) throw redisError(source.endpoint, 'DUMP', payload);
    // Gone meanwhile (expired): nothing to restore.
    if (payload === null || ttl === -2) return;
    if (!Buffer.isBuffer(payload) || typeof ttl !== 'number')
      throw new WardenError('WARDEN_E_PROTOCOL', 'DUMP/PTTL answered with unexpected types');
    const connection = target.route(key);
    const list = perTarget.get(connection) ?? [];
    list.push(['RESTORE', key, ttl > 0 ? ttl : 0, payload]);
    perTarget.set(connection, list);
    count += 1;
  });
  await Promise.all(
    [...perTarget].map(async ([connection, commands]) => {
      for (const reply of await connection.pipeline(commands))
        if (reply instanceof RespError) throw redisError(connection.endpoint, 'RESTORE', reply);
    }),
  );
  return count;
}
