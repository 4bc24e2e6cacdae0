import { readFile } from 'node:fs/promises';
import { WardenError } from '../errors.ts';
import { takeRedisBackup } from '../redis-backup/redis-backup.ts';
import { parseRedisUrl } from '../redis-backup/redis-endpoint.ts';
import { expireRedisBackups } from '../redis-backup/redis-expire.ts';
import type { JobDefinition } from '../scheduler/scheduler.ts';
import type { Logger } from 'pino';
import type { Compression } from '../pipeline/compression.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { redisJobName, type RedisBackupPlan } from './redis-backup-config.ts';

/** What the Redis backup jobs need of the cluster's job dependencies. */
export interface RedisJobDeps {
  plan: { redisBackups?: RedisBackupPlan[] };
  store: ObjectStore;
  compression: Compression;
  keys?: RepositoryKeys;
  logger: Logger;
}

/**
 * One job per configured Redis: a backup into the cluster's repository, then that Redis's own
 * retention (another Redis's backups are never touched by it).
 */
export function redisBackupJobs(deps: RedisJobDeps): JobDefinition[] {
  return (deps.plan.redisBackups ?? []).map((plan) => ({
    name: redisJobName(plan.name),
    schedule: plan.schedule,
    run: async ({ signal }) => {
      const report = await takeRedisBackup({
        endpoint: parseRedisUrl(plan.url, await password(plan)),
        cluster: plan.cluster,
        diskless: plan.diskless,
        name: plan.name,
        store: deps.store,
        compression: deps.compression,
        ...(deps.keys ? { keys: deps.keys } : {}),
        logger: deps.logger,
        signal,
      });
      const expired = await expireRedisBackups(deps.store, plan.retention, {
        only: plan.name,
        ...(deps.keys ? { keys: deps.keys } : {}),
      });
      const { backup } = report;
      return {
        status: 'succeeded',
        detail: `Redis backup ${backup.id} (${backup.topology}, ${backup.shards.length} RDB)${expired.expire.length ? `; expired ${expired.expire.map((b) => b.id).join(', ')}` : ''}`,
      };
    },
  }));
}

async function password(plan: RedisBackupPlan): Promise<{ password?: string }> {
  if (!plan.passwordFile)
    return process.env.WARDEN_REDIS_PASSWORD ? { password: process.env.WARDEN_REDIS_PASSWORD } : {};
  try {
    return { password: (await readFile(plan.passwordFile, 'utf8')).split('\n')[0]! };
  } catch (cause) {
    throw new WardenError(
      'WARDEN_E_SECRET_UNAVAILABLE',
      `cannot read the password file of Redis ${plan.name}`,
      {
        details: { redis: plan.name, file: plan.passwordFile },
        cause,
      },
    );
  }
}
