import { readFile } from 'node:fs/promises';
import { WardenError } from '../../errors.ts';
import { takeRedisBackup } from '../../redis-backup/redis-backup.ts';
import { listRedisBackups } from '../../redis-backup/redis-catalog.ts';
import { parseRedisUrl, type RedisEndpoint } from '../../redis-backup/redis-endpoint.ts';
import { DEFAULT_REDIS_RETENTION, expireRedisBackups, redisOf } from '../../redis-backup/redis-expire.ts';
import { Repository } from '../../repository/repository.ts';
import { parseDuration } from '../../retention/retention-policy.ts';
import type { CommandContext } from '../context.ts';
import { formatBytes, formatDuration, printJson, printSteps, table } from '../render.ts';

export interface RedisConnectionFlags {
  redis?: string;
  redisPasswordFile?: string;
}

export interface RedisBackupFlags extends RedisConnectionFlags {
  cluster?: boolean;
  diskless?: boolean;
  maxRdbSize?: string;
  name?: string;
}

/**
 * The Redis from `--redis` (or WARDEN_REDIS_URL); its password from `--redis-password-file` or
 * WARDEN_REDIS_PASSWORD, never from the command line.
 */
export async function redisEndpoint(
  url: string | undefined,
  passwordFile: string | undefined,
  flag = '--redis',
): Promise<RedisEndpoint> {
  const text = url ?? process.env.WARDEN_REDIS_URL;
  if (!text)
    throw new WardenError('WARDEN_E_USAGE', `${flag} is required`, {
      hint: `e.g. ${flag} redis://10.0.0.5:6379`,
    });
  let password = process.env.WARDEN_REDIS_PASSWORD;
  if (passwordFile) {
    try {
      password = (await readFile(passwordFile, 'utf8')).split('\n')[0];
    } catch (cause) {
      throw new WardenError(
        'WARDEN_E_SECRET_UNAVAILABLE',
        `cannot read --redis-password-file ${passwordFile}`,
        { cause },
      );
    }
  }
  return parseRedisUrl(text, password ? { password } : {});
}

/** Sizes like `64GiB`, `500MB`, `1048576`. */
export function parseByteSize(text: string, flag: string): number {
  const match = /^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?\s*$/i.exec(text);
  if (!match) throw new WardenError('WARDEN_E_USAGE', `${flag}: "${text}" is not a size (like 64GiB)`);
  const unit = (match[2] ?? 'B').toLowerCase();
  const factor: Record<string, number> = {
    b: 1,
    kb: 1e3,
    kib: 1024,
    mb: 1e6,
    mib: 1024 ** 2,
    gb: 1e9,
    gib: 1024 ** 3,
    tb: 1e12,
    tib: 1024 ** 4,
  };
  return Number(match[1]) * factor[unit]!;
}

/** `warden redis backup --redis URL [--cluster]`. */
export async function redisBackupCommand(
  context: CommandContext,
  flags: RedisBackupFlags,
  signal?: AbortSignal,
): Promise<number> {
  const report = await takeRedisBackup({
    endpoint: await redisEndpoint(flags.redis, flags.redisPasswordFile),
    cluster: flags.cluster === true,
    diskless: flags.diskless === true,
    ...(flags.name ? { name: flags.name } : {}),
    ...(flags.maxRdbSize ? { maxRdbBytes: parseByteSize(flags.maxRdbSize, '--max-rdb-size') } : {}),
    store: context.store,
    keys: await context.writeKeys(),
    logger: context.logger,
    ...(signal ? { signal } : {}),
  });
  if (context.json) {
    printJson(report);
    return 0;
  }
  const { backup } = report;
  const raw = backup.shards.reduce((sum, s) => sum + s.object.rawSize, 0);
  const stored = backup.shards.reduce((sum, s) => sum + s.object.size, 0);
  process.stdout.write(
    `Redis backup ${backup.id} of ${backup.source} (${backup.topology}, ${backup.shards.length} RDB) committed: ${formatBytes(raw)} -> ${formatBytes(stored)} in ${formatDuration(backup.durationMs)}\n`,
  );
  printSteps(report.steps);
  return 0;
}

/** `warden redis list`. */
export async function redisListCommand(context: CommandContext): Promise<number> {
  const repository = await Repository.open(context.store, await context.readKeys());
  const backups = await listRedisBackups(repository);
  if (context.json) {
    printJson({ repository: repository.location, backups });
    return 0;
  }
  if (backups.length === 0) {
    process.stdout.write('no Redis backups yet\n');
    return 0;
  }
  const rows = backups.map((b) => [
    b.id,
    redisOf(b),
    b.topology === 'cluster' ? `cluster (${b.shards.length})` : 'standalone',
    b.startTime.replace('T', ' ').slice(0, 19),
    formatBytes(b.shards.reduce((sum, s) => sum + s.object.rawSize, 0)),
    formatBytes(b.shards.reduce((sum, s) => sum + s.object.size, 0)),
    b.redisVersion,
    formatDuration(b.durationMs),
  ]);
  process.stdout.write(
    `${table(['ID', 'REDIS', 'TOPOLOGY', 'STARTED (UTC)', 'SIZE', 'STORED', 'VERSION', 'DURATION'], rows)}\n`,
  );
  return 0;
}

/** `warden redis expire [--keep-last N] [--max-age 30d] [--dry-run]`. */
export async function redisExpireCommand(
  context: CommandContext,
  flags: { keepLast?: string; maxAge?: string; dryRun?: boolean },
): Promise<number> {
  const keepLast = flags.keepLast === undefined ? DEFAULT_REDIS_RETENTION.keepLast : Number(flags.keepLast);
  if (keepLast === undefined || !Number.isInteger(keepLast) || keepLast < 1)
    throw new WardenError('WARDEN_E_USAGE', '--keep-last must be a whole number of at least 1');
  const plan = await expireRedisBackups(
    context.store,
    {
      keepLast,
      ...(flags.maxAge ? { maxAgeMs: parseDuration(flags.maxAge, '--max-age', 'WARDEN_E_USAGE') } : {}),
    },
    { keys: await context.writeKeys(), ...(flags.dryRun ? { dryRun: true } : {}) },
  );
  if (context.json) {
    printJson({
      dryRun: flags.dryRun === true,
      kept: plan.keep.map((b) => b.id),
      expired: plan.expire.map((b) => b.id),
    });
    return 0;
  }
  const verb = flags.dryRun ? 'would expire' : 'expired';
  process.stdout.write(
    `${verb} ${plan.expire.length} Redis backup(s)${plan.expire.length ? `: ${plan.expire.map((b) => b.id).join(', ')}` : ''}; ${plan.keep.length} kept\n`,
  );
  return 0;
}
