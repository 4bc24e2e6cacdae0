import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { WardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { StepRecorder, type StepReport } from '../util/step-recorder.ts';
import { clusterInstructions, shardConfig, shardPort } from './cluster-instructions.ts';
import { writeShardRdb } from './rdb-file.ts';
import { getRedisBackup } from './redis-catalog.ts';

/** Written first and removed last: a directory holding it is a restore that did not complete. */
export const REDIS_INCOMPLETE_MARKER = 'warden-restore-incomplete.json';

export interface RedisRestoreDirOptions {
  store: ObjectStore;
  keys?: RepositoryKeys;
  backupId: string;
  /** Absent or empty; created when absent. */
  targetDir: string;
  logger?: Logger;
  signal?: AbortSignal;
}

export interface RedisRestoreDirReport {
  backupId: string;
  targetDir: string;
  /** The dump.rdb files written, one per shard. */
  files: string[];
  steps: StepReport[];
}

/**
 * Writes a Redis backup out for new instances: `DIR/dump.rdb` for a standalone backup; for a
 * cluster, `DIR/<shard>/dump.rdb` and `DIR/<shard>/redis.conf` per master, `DIR/slot-map.json`
 * and `DIR/README.txt` on forming the cluster. Every RDB is checked against its recorded SHA-256
 * before it gets its final name; on failure what the restore wrote is removed.
 */
export async function restoreRedisToDir(options: RedisRestoreDirOptions): Promise<RedisRestoreDirReport> {
  const logger = options.logger ?? silentLogger;
  const steps = new StepRecorder();
  const repository = await Repository.open(options.store, options.keys);
  const record = await steps.run(
    'read record',
    () => getRedisBackup(repository, options.backupId),
    (r) => `${r.topology}, ${r.shards.length} shard(s)`,
  );
  const dir = path.resolve(options.targetDir);
  const created = await steps.run('prepare target directory', () => prepareDir(dir));
  const files: string[] = [];
  try {
    await writeFile(
      path.join(dir, REDIS_INCOMPLETE_MARKER),
      `${JSON.stringify({ backup: record.id, startedAt: new Date().toISOString() })}\n`,
      { mode: 0o600 },
    );
    for (const [index, shard] of record.shards.entries()) {
      const shardDir = record.topology === 'cluster' ? path.join(dir, shard.name) : dir;
      const file = path.join(shardDir, 'dump.rdb');
      await steps.run(
        `write ${shard.name}`,
        async () => {
          await mkdir(shardDir, { recursive: true, mode: 0o700 });
          await writeShardRdb(options.store, record, shard, options.keys, file, options.signal);
          if (record.topology === 'cluster')
            await writeFile(path.join(shardDir, 'redis.conf'), shardConfig(shardDir, shardPort(index)), {
              mode: 0o600,
            });
        },
        () => `${shard.object.rawSize} bytes`,
      );
      files.push(file);
    }
    if (record.topology === 'cluster') {
      const map = record.shards.map((s) => ({
        shard: s.name,
        node: s.node,
        nodeId: s.nodeId,
        slots: s.slots,
      }));
      await writeFile(
        path.join(dir, 'slot-map.json'),
        `${JSON.stringify({ backup: record.id, source: record.source, shards: map }, null, 2)}\n`,
        { mode: 0o600 },
      );
      await writeFile(path.join(dir, 'README.txt'), clusterInstructions(record, dir), { mode: 0o600 });
    }
    await rm(path.join(dir, REDIS_INCOMPLETE_MARKER));
  } catch (error) {
    await undo(dir, created);
    throw error;
  }
  logger.info({ backup: record.id, dir }, 'redis backup restored to a directory');
  return { backupId: record.id, targetDir: dir, files, steps: steps.steps };
}

/** Creates the directory, or accepts an existing empty one; true when this restore created it. */
async function prepareDir(dir: string): Promise<boolean> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    return true;
  }
  if (entries.length > 0) {
    throw new WardenError('WARDEN_E_TARGET_NOT_EMPTY', `${dir} is not empty`, {
      hint: 'Restore into a new or empty directory: Warden never overwrites files.',
      details: { targetDir: dir, entries: entries.slice(0, 5) },
    });
  }
  return false;
}

async function undo(dir: string, created: boolean): Promise<void> {
  if (created) {
    await rm(dir, { recursive: true, force: true });
    return;
  }
  for (const entry of await readdir(dir).catch(() => [] as string[]))
    await rm(path.join(dir, entry), { recursive: true, force: true });
}
