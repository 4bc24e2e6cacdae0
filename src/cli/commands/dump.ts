import { takeDump } from '../../backup/logical-dump.ts';
import { WardenError } from '../../errors.ts';
import { listDumps } from '../../repository/dump-catalog.ts';
import { Repository } from '../../repository/repository.ts';
import { restoreDump } from '../../restore/dump-restore.ts';
import type { CommandContext } from '../context.ts';
import { warnIdleSlot } from '../slot-warning.ts';
import { formatBytes, formatDuration, printJson, printSteps, table } from '../render.ts';

/** `warden dump --database D`: a logical dump (pg_dump custom format) into the repository. */
export async function dumpCommand(
  context: CommandContext,
  flags: { database?: string },
  signal?: AbortSignal,
): Promise<number> {
  if (!flags.database)
    throw new WardenError('WARDEN_E_USAGE', '--database is required', {
      hint: 'e.g. warden dump --database waqiti',
    });
  await warnIdleSlot(context);
  const report = await takeDump({
    connection: context.cluster(),
    database: flags.database,
    store: context.store,
    keys: await context.writeKeys(),
    logger: context.logger,
    ...(signal ? { signal } : {}),
  });
  if (context.json) {
    printJson(report);
    return 0;
  }
  const { dump } = report;
  process.stdout.write(
    `dump ${dump.id} of database ${dump.database} committed: ${formatBytes(dump.object.rawSize)} -> ${formatBytes(dump.object.size)} in ${formatDuration(dump.durationMs)}\n`,
  );
  printSteps(report.steps);
  return 0;
}

/** `warden dump list`. */
export async function dumpListCommand(context: CommandContext): Promise<number> {
  const repository = await Repository.open(context.store);
  const dumps = await listDumps(repository);
  if (context.json) {
    printJson({ repository: repository.location, dumps });
    return 0;
  }
  if (dumps.length === 0) {
    process.stdout.write('no dumps yet\n');
    return 0;
  }
  const rows = dumps.map((d) => [
    d.id,
    d.database,
    d.startTime.replace('T', ' ').slice(0, 19),
    formatBytes(d.object.rawSize),
    formatBytes(d.object.size),
    d.serverVersion,
    formatDuration(d.durationMs),
  ]);
  process.stdout.write(
    `${table(['ID', 'DATABASE', 'STARTED (UTC)', 'SIZE', 'STORED', 'SERVER', 'DURATION'], rows)}\n`,
  );
  return 0;
}

/** `warden restore --dump ID --target-database NEW`. */
export async function dumpRestoreCommand(
  context: CommandContext,
  flags: { dump?: string; targetDatabase?: string },
  signal?: AbortSignal,
): Promise<number> {
  if (!flags.dump || !flags.targetDatabase)
    throw new WardenError('WARDEN_E_USAGE', '--dump and --target-database go together', {
      hint: 'e.g. warden restore --dump 20261122-143005D --target-database waqiti_restored',
    });
  const report = await restoreDump({
    connection: context.cluster(),
    store: context.store,
    dumpId: flags.dump,
    targetDatabase: flags.targetDatabase,
    keys: await context.readKeys(),
    logger: context.logger,
    ...(signal ? { signal } : {}),
  });
  if (context.json) {
    printJson(report);
    return 0;
  }
  process.stdout.write(
    `restored dump ${report.dumpId} of ${report.database} into new database ${report.targetDatabase} (${formatDuration(report.restoreMs)})\n`,
  );
  printSteps(report.steps);
  return 0;
}
