import { WardenError } from '../../errors.ts';
import { recordDrill, renderDrillSummary, runDrill } from '../../verify/drill.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../render.ts';
import { daemonPlanFor, storeFor, type ServeFlags } from './serve.ts';

/**
 * `warden drill`: a DR drill now. Restores the latest point into a scratch instance, measures
 * RTO and RPO against the profile's objectives (or --rto/--rpo), keeps the report in the
 * repository, and exits 7 (WARDEN_E_DRILL_FAILED) when the drill fails.
 */
export async function drillCommand(
  context: CommandContext,
  flags: ServeFlags,
  signal: AbortSignal,
): Promise<number> {
  const plan = daemonPlanFor(context, flags).clusters[0]!;
  const connection = plan.connection ?? context.cluster();
  const store = storeFor(context, plan.repositoryPath);
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
