import { WardenError } from '../../errors.ts';
import { recordDrill, renderDrillSummary, runDrill } from '../../verify/drill.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../render.ts';
import { openObjectStore } from '../../repository/open-object-store.ts';
import { daemonPlanFor, type ServeFlags } from '../daemon-plan.ts';
import { DRILL_MIGRATION_TIMEOUT } from '../../daemon/daemon-config.ts';
import { parseDuration } from '../../util/duration.ts';
import { warnIdleSlot } from '../slot-warning.ts';
import type { DrillMigrationPlan } from '../../verify/drill-migration.ts';

export interface DrillFlags extends ServeFlags {
  migrate?: boolean;
  migrateTimeout?: string;
  migrateDatabase?: string;
}

/**
 * `warden drill`: a DR drill now. Restores the latest point into a scratch instance, measures
 * RTO and RPO against the profile's objectives (or --rto/--rpo), keeps the report in the
 * repository, and exits 7 (WARDEN_E_DRILL_FAILED) when the drill fails. With `--migrate -- CMD`
 * (or `drillMigration` in the config) it also runs the pending migrations on the restored copy.
 */
export async function drillCommand(
  context: CommandContext,
  flags: DrillFlags,
  signal: AbortSignal,
  command: readonly string[] = [],
): Promise<number> {
  const plan = daemonPlanFor(context, flags).clusters[0]!;
  const migration = migrationPlan(flags, command, plan.drillMigration);
  const connection = plan.connection ?? context.cluster();
  const store = await openObjectStore(plan.repository);
  await warnIdleSlot(context, { store, connection });
  if (!context.json)
    process.stdout.write(`drill: restoring the latest point of ${store.location} into a scratch instance\n`);
  const report = await runDrill({
    store,
    connection,
    objectives: plan.objectives,
    checks: plan.checks,
    scratch: plan.verification,
    cluster: plan.name,
    profile: plan.profile,
    keys: await context.readKeys(store),
    ...(migration ? { migration } : {}),
    logger: context.logger,
    signal,
  });
  const key = await recordDrill(store, report);
  if (context.json) printJson({ ...report, recordedAs: key });
  else process.stdout.write(`${renderDrillSummary(report)}report: ${store.location}/${key}\n`);
  if (report.passed) return 0;
  const error = new WardenError('WARDEN_E_DRILL_FAILED', `drill failed: ${report.failures.join('; ')}`);
  if (!context.json) process.stderr.write(`error ${error.code}: ${error.message}\n`);
  return error.exitCode;
}

/** The flags' migration step (a command after `--` needs --migrate, and the reverse), else the config's. */
function migrationPlan(
  flags: DrillFlags,
  command: readonly string[],
  configured: DrillMigrationPlan | undefined,
): DrillMigrationPlan | undefined {
  if (command.length && !flags.migrate)
    throw new WardenError(
      'WARDEN_E_USAGE',
      `drill takes no arguments; to run a migration on the restored copy: warden drill --migrate -- ${command[0]} …`,
    );
  const timeoutMs = (fallback: number) => {
    if (flags.migrateTimeout === undefined) return fallback;
    try {
      return parseDuration(flags.migrateTimeout, '--migrate-timeout');
    } catch {
      throw new WardenError(
        'WARDEN_E_USAGE',
        `--migrate-timeout: "${flags.migrateTimeout}" is not a duration (e.g. 30s, 10m)`,
      );
    }
  };
  if (flags.migrate) {
    if (!command.length)
      throw new WardenError('WARDEN_E_USAGE', '--migrate needs the migration command after --', {
        hint: 'warden drill --migrate -- npx node-pg-migrate up',
      });
    return {
      command: [...command],
      timeoutMs: timeoutMs(parseDuration(DRILL_MIGRATION_TIMEOUT, '--migrate-timeout')),
      ...(flags.migrateDatabase ? { database: flags.migrateDatabase } : {}),
    };
  }
  if (!configured) {
    if (flags.migrateTimeout !== undefined || flags.migrateDatabase !== undefined)
      throw new WardenError(
        'WARDEN_E_USAGE',
        '--migrate-timeout and --migrate-database go with --migrate -- CMD',
      );
    return undefined;
  }
  return {
    ...configured,
    timeoutMs: timeoutMs(configured.timeoutMs),
    ...(flags.migrateDatabase ? { database: flags.migrateDatabase } : {}),
  };
}
