import path from 'node:path';
import { z } from 'zod';
import { WardenError } from '../errors.ts';
import type { RedisRetention } from '../redis-backup/redis-expire.ts';
import { parseRedisUrl } from '../redis-backup/redis-endpoint.ts';
import { parseDuration } from '../retention/retention-policy.ts';
import { Schedule } from '../scheduler/schedule.ts';

/**
 * `redisBackups:` (at `daemon` or per cluster): the Redis deployments whose data the daemon backs
 * up into the cluster's repository. Opt-in: sessions and caches are ephemeral by design.
 */
export const redisBackupsSectionSchema = z.array(
  z
    .object({
      name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, - and _ only'),
      /** redis://host:port (any node of a cluster); no password here: passwordFile or WARDEN_REDIS_PASSWORD. */
      url: z.string(),
      cluster: z.boolean().optional(),
      passwordFile: z.string().optional(),
      /** Cron, in the cluster's time zone. */
      schedule: z.string(),
      keepLast: z.number().int().min(1).optional(),
      maxAge: z.string().optional(),
      diskless: z.boolean().optional(),
    })
    .strict(),
);

export type RedisBackupsSection = z.infer<typeof redisBackupsSectionSchema>;

/** One scheduled Redis backup, resolved. */
export interface RedisBackupPlan {
  name: string;
  url: string;
  cluster: boolean;
  /** Read at each run, so a rotated password is picked up without a restart. */
  passwordFile?: string;
  schedule: Schedule;
  retention: RedisRetention;
  diskless: boolean;
}

/** The job name of a Redis backup schedule (its state file, lock key and status line). */
export function redisJobName(name: string): string {
  return `redis-backup-${name}`;
}

export function resolveRedisBackupPlans(
  section: RedisBackupsSection,
  field: string,
  timezone: string,
  baseDir: string,
): RedisBackupPlan[] {
  const seen = new Set<string>();
  return section.map((entry, i) => {
    const where = `${field}.${i}`;
    if (seen.has(entry.name)) throw invalid(`${where}.name`, `"${entry.name}" is named twice`);
    seen.add(entry.name);
    const endpoint = parseRedisUrl(entry.url);
    if (endpoint.password !== undefined)
      throw invalid(`${where}.url`, 'carries a password: use passwordFile (or WARDEN_REDIS_PASSWORD)');
    return {
      name: entry.name,
      url: entry.url,
      cluster: entry.cluster === true,
      ...(entry.passwordFile ? { passwordFile: path.resolve(baseDir, entry.passwordFile) } : {}),
      schedule: new Schedule(entry.schedule, timezone, `${where}.schedule`),
      retention: {
        keepLast: entry.keepLast ?? 7,
        ...(entry.maxAge ? { maxAgeMs: parseDuration(entry.maxAge, `${where}.maxAge`) } : {}),
      },
      diskless: entry.diskless === true,
    };
  });
}

function invalid(field: string, problem: string): WardenError {
  return new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: ${problem}`, { details: { field } });
}
