import { WardenError } from '../../errors.ts';
import { loadRedisBackup } from '../../redis-backup/redis-load.ts';
import { restoreRedisToDir } from '../../redis-backup/redis-restore-dir.ts';
import type { CommandContext } from '../context.ts';
import { printJson, printSteps } from '../render.ts';
import { redisEndpoint } from './redis-backup.ts';

export interface RedisRestoreFlags {
  targetDir?: string;
  to?: string;
  redisPasswordFile?: string;
}

/** `warden redis restore ID --target-dir DIR | --to redis://…`. */
export async function redisRestoreCommand(
  context: CommandContext,
  id: string,
  flags: RedisRestoreFlags,
  signal?: AbortSignal,
): Promise<number> {
  if ((flags.targetDir === undefined) === (flags.to === undefined)) {
    throw new WardenError('WARDEN_E_USAGE', 'give exactly one of --target-dir and --to', {
      hint: 'e.g. warden redis restore 20261122-143005R --target-dir /srv/redis-restored, or --to redis://10.0.0.9:6379',
    });
  }
  const keys = await context.readKeys();
  const common = {
    store: context.store,
    keys,
    backupId: id,
    logger: context.logger,
    ...(signal ? { signal } : {}),
  };
  if (flags.targetDir !== undefined) {
    const report = await restoreRedisToDir({ ...common, targetDir: flags.targetDir });
    if (context.json) printJson(report);
    else {
      process.stdout.write(
        `restored Redis backup ${report.backupId} into ${report.targetDir}: ${report.files.join(', ')}\n`,
      );
      printSteps(report.steps);
    }
    return 0;
  }
  const report = await loadRedisBackup({
    ...common,
    target: await redisEndpoint(flags.to, flags.redisPasswordFile, '--to'),
  });
  if (context.json) printJson(report);
  else {
    process.stdout.write(
      `loaded ${report.keys} key(s) of Redis backup ${report.backupId} into ${report.target}\n`,
    );
    printSteps(report.steps);
  }
  return 0;
}
