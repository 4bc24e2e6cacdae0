import { switchover } from '../../ha/switchover.ts';
import { META_KEY } from '../../repository/repository-meta.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../render.ts';

export interface SwitchoverFlags {
  candidate?: string;
}

/**
 * `warden switchover [--candidate NAME]`: Patroni hands the lead over; Warden waits for the new
 * leader and checks that the WAL stream followed it (when a repository is configured).
 */
export async function switchoverCommand(
  context: CommandContext,
  flags: SwitchoverFlags,
  signal: AbortSignal,
): Promise<number> {
  // The stream is checked in the configured repository once it exists (a stream created it).
  const streamed = (await context.store.stat(META_KEY).catch(() => undefined)) !== undefined;
  const report = await switchover({
    connection: context.cluster(),
    ...(flags.candidate ? { candidate: flags.candidate } : {}),
    ...(streamed ? { store: context.store } : {}),
    signal,
  });
  if (context.json) printJson(report);
  else
    process.stdout.write(
      `switched over from ${report.from} to ${report.to} (timeline ${report.timeline}, ${report.lsn}) in ${(report.leaderChangeMs / 1000).toFixed(1)} s` +
        (report.streamFollowedMs !== undefined
          ? `; the WAL stream followed in ${(report.streamFollowedMs / 1000).toFixed(1)} s\n`
          : '; no repository configured: the stream was not checked\n'),
    );
  return 0;
}
