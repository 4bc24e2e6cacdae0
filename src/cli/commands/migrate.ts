import { EXIT, WardenError } from '../../errors.ts';
import { runGuardedMigration } from '../../migrate/guarded-migration.ts';
import type { ProtectPolicy } from '../../migrate/protect-point.ts';
import { rollbackCommand } from '../../migrate/rollback-command.ts';
import { restore } from '../../restore/restore.ts';
import { parseDuration } from '../../util/duration.ts';
import { listMigrations } from '../../migrate/migration-record.ts';
import { readSchemaVersion } from '../../migrate/schema-version.ts';
import { Repository } from '../../repository/repository.ts';
import type { CommandContext } from '../context.ts';
import { printJson, reportError } from '../render.ts';
import { warnIdleSlot } from '../slot-warning.ts';

export interface MigrateFlags {
  lockTimeout?: string;
  protect?: string;
  protectTimeout?: string;
  rollbackToNewInstance?: boolean;
  targetDir?: string;
  port?: string;
}

/** `warden migrate [flags] -- <command…>`: see runGuardedMigration. */
export async function migrateCommand(
  context: CommandContext,
  command: string[],
  flags: MigrateFlags,
  signal?: AbortSignal,
): Promise<number> {
  const policy = (flags.protect ?? 'restore-point') as ProtectPolicy;
  if (policy !== 'restore-point' && policy !== 'backup')
    throw new WardenError(
      'WARDEN_E_USAGE',
      `--protect: "${flags.protect}" is neither restore-point nor backup`,
    );
  if (flags.rollbackToNewInstance && !flags.targetDir)
    throw new WardenError('WARDEN_E_USAGE', '--rollback-to-new-instance needs --target-dir', {
      hint: 'Name a new, empty directory for the instance holding the state from before the migration.',
    });
  const say = (line: string) => process.stderr.write(`warden migrate: ${line}\n`);
  await warnIdleSlot(context);
  const record = await runGuardedMigration({
    connection: context.cluster(),
    store: context.store,
    keys: await context.writeKeys(),
    compression: context.config.repository.compression,
    command,
    lockTimeoutMs: durationFlag(flags.lockTimeout ?? '10m', '--lock-timeout'),
    protectTimeoutMs: durationFlag(flags.protectTimeout ?? '2m', '--protect-timeout'),
    policy,
    logger: context.logger,
    say,
    ...(signal ? { signal } : {}),
  });
  if (record.outcome === 'succeeded') {
    if (context.json) printJson(record);
    else
      say(
        `migration succeeded in ${(record.durationMs / 1000).toFixed(1)} s (recorded as migrations/${record.id}.json)`,
      );
    return EXIT.ok;
  }
  const how =
    record.exitCode === null ? `was killed by ${record.signal}` : `exited with status ${record.exitCode}`;
  const failure = new WardenError('WARDEN_E_MIGRATION_FAILED', `the migration command ${how}`, {
    hint: `The state from before it is restorable into a new instance:\n  ${record.rollback}`,
    details: { id: record.id, exitCode: record.exitCode, rollback: record.rollback },
  });
  if (!flags.rollbackToNewInstance) return reportError(failure, context.json);
  reportError(failure, context.json);
  say(`restoring the state from before the migration into ${flags.targetDir}`);
  const point = record.protectedBy;
  const report = await restore({
    store: context.store,
    target:
      point.kind === 'restore-point' ? { kind: 'name', name: point.name } : { kind: 'backup', id: point.id },
    targetDir: flags.targetDir!,
    start: true,
    ...(flags.port ? { port: Number(flags.port) } : {}),
    keys: await context.readKeys(),
    logger: context.logger,
    ...(signal ? { signal } : {}),
  });
  say(
    `the state from before the migration serves on port ${report.port} from ${report.targetDir} (${rollbackCommand(point, context.store.location, report.targetDir)})`,
  );
  if (context.json) printJson({ migration: record, rollback: report });
  return EXIT.checkFailed;
}

function durationFlag(value: string, flag: string): number {
  try {
    return parseDuration(value, flag);
  } catch {
    throw new WardenError('WARDEN_E_USAGE', `${flag}: "${value}" is not a duration (e.g. 30s, 10m)`);
  }
}

/** `warden migrate status`: the schema version (native runner's history) and the last guarded migrations. */
export async function migrateStatusCommand(context: CommandContext): Promise<number> {
  const schema = await readSchemaVersion(context.cluster());
  const repository = await Repository.open(context.store, await context.readKeys()).catch(() => undefined);
  const recorded = repository ? await listMigrations(repository) : { records: [], unreadable: 0 };
  if (context.json) {
    printJson({ schema, migrations: recorded.records, unreadableRecords: recorded.unreadable });
    return EXIT.ok;
  }
  process.stdout.write(
    schema.tracked
      ? `schema version ${schema.current} (${schema.applied.length} migrations applied, the last ${schema.applied.at(-1)?.appliedAt ?? '-'})\n`
      : 'no warden_schema_history table: versions are tracked by your migration tool\n',
  );
  for (const r of recorded.records.slice(0, 10))
    process.stdout.write(
      `${r.startedAt}  ${r.outcome.padEnd(9)}  ${r.program}  by ${r.actor.user}@${r.actor.host}  rollback: ${r.rollback}\n`,
    );
  if (recorded.unreadable)
    process.stdout.write(`warning: ${recorded.unreadable} migration records failed their check\n`);
  return EXIT.ok;
}
