import { invalidateCaches } from '../../cache-coherence/cache-invalidator.ts';
import { WardenError } from '../../errors.ts';
import type { CommandContext } from '../context.ts';
import { daemonPlanFor } from '../daemon-plan.ts';
import { printJson, printSteps } from '../render.ts';

export interface CacheInvalidateFlags {
  reason?: string;
  cluster?: string;
}

/**
 * `warden cache invalidate --reason TEXT [--cluster NAME]`: announces a cut-over (a restored
 * instance now serves the applications) to their caches, as the daemon does by itself after a
 * timeline change: generation bumped, prefixes cleared, invalidation published.
 */
export async function cacheInvalidateCommand(
  context: CommandContext,
  flags: CacheInvalidateFlags,
): Promise<number> {
  const reason = flags.reason?.trim();
  if (!reason) {
    throw new WardenError('WARDEN_E_USAGE', '--reason: required (what changed, for the log and the message)');
  }
  const withCache = daemonPlanFor(context, {}).clusters.filter((c) => c.cache !== undefined);
  const cluster = flags.cluster
    ? withCache.find((c) => c.name === flags.cluster)
    : withCache.length === 1
      ? withCache[0]
      : undefined;
  if (!cluster?.cache) {
    throw new WardenError(
      'WARDEN_E_USAGE',
      withCache.length === 0
        ? 'no cache: section in the daemon configuration'
        : `--cluster: one of ${withCache.map((c) => c.name).join(', ')}`,
      { hint: 'See docs/cache-coherence.md for the daemon.cache section.' },
    );
  }
  const report = await invalidateCaches(cluster.cache, { kind: 'cut-over', reason, cluster: cluster.name });
  if (context.json) printJson(report);
  else {
    process.stdout.write(`caches of ${report.cluster} invalidated: generation ${report.generation}\n`);
    printSteps(report.steps);
  }
  return 0;
}
