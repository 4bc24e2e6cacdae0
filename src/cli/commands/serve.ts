import type { CommandContext } from '../context.ts';
import { daemonPlanFor, type ServeFlags } from '../daemon-plan.ts';
import { runDaemon } from '../run-daemon.ts';
import { runEmbeddedCommand } from './embedded.ts';

/**
 * `warden serve`: the daemon for the configured clusters; with none configured, the embedded
 * default (a local PostgreSQL with a ledger workload) under the dev profile.
 */
export async function serveCommand(
  context: CommandContext,
  flags: ServeFlags,
  signal: AbortSignal,
): Promise<number> {
  if (!context.config.cluster && !context.config.daemon.section?.clusters?.length) {
    return runEmbeddedCommand(context, signal, flags);
  }
  return runDaemon(context, daemonPlanFor(context, flags), flags, signal);
}
