import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import {
  listRedisBackups,
  redisBackupPrefix,
  redisRecordKey,
  type RedisBackupRecord,
} from './redis-catalog.ts';
import { openRepositoryForRedis, removeRedisAttempt } from './redis-repository.ts';

/** Which Redis backups stay: a backup stays when ANY rule wants it; each Redis's newest always stays. */
export interface RedisRetention {
  /** The newest N backups of each Redis. */
  keepLast?: number;
  /** Every backup younger than this. */
  maxAgeMs?: number;
}

export const DEFAULT_REDIS_RETENTION: Readonly<RedisRetention> = Object.freeze({ keepLast: 7 });

export interface RedisExpiryPlan {
  keep: RedisBackupRecord[];
  expire: RedisBackupRecord[];
}

/** The Redis a backup belongs to: its configured name, else the address it was taken from. */
export function redisOf(record: RedisBackupRecord): string {
  return record.name ?? record.source;
}

/** Plans which backups go, per Redis (one deployment's schedule never expires another's backups). */
export function planRedisExpiry(
  records: readonly RedisBackupRecord[],
  policy: RedisRetention,
  now = new Date(),
): RedisExpiryPlan {
  const plan: RedisExpiryPlan = { keep: [], expire: [] };
  const groups = new Map<string, RedisBackupRecord[]>();
  for (const record of records) groups.set(redisOf(record), [...(groups.get(redisOf(record)) ?? []), record]);
  for (const group of groups.values()) {
    const newestFirst = [...group].sort(
      (a, b) => b.startTime.localeCompare(a.startTime) || b.id.localeCompare(a.id),
    );
    newestFirst.forEach((record, index) => {
      const young =
        policy.maxAgeMs !== undefined && now.getTime() - Date.parse(record.endTime) < policy.maxAgeMs;
      const recent = index < Math.max(1, policy.keepLast ?? 0);
      (young || recent ? plan.keep : plan.expire).push(record);
    });
  }
  return plan;
}

/**
 * Removes the Redis backups the policy does not keep: the record first (the backup is no longer
 * committed, so nothing restores from a half-deleted one), then its RDB objects.
 */
export async function expireRedisBackups(
  store: ObjectStore,
  policy: RedisRetention,
  options: {
    dryRun?: boolean;
    keys?: RepositoryKeys;
    now?: Date;
    /** Only this Redis's backups (a schedule's own). */ only?: string;
  } = {},
): Promise<RedisExpiryPlan> {
  const repository = await openRepositoryForRedis(store, options.keys);
  const records = (await listRedisBackups(repository)).filter(
    (r) => options.only === undefined || redisOf(r) === options.only,
  );
  const plan = planRedisExpiry(records, policy, options.now);
  if (options.dryRun) return plan;
  for (const record of plan.expire) {
    await store.delete(redisRecordKey(record.id));
    await removeRedisAttempt(store, redisBackupPrefix(record.id));
  }
  return plan;
}
