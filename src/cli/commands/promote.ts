import { promote } from '../../ha/promote.ts';
import { splitCommand } from '../../postgres/password-source.ts';
import { META_KEY } from '../../repository/repository-meta.ts';
import type { CommandContext } from '../context.ts';
import { formatBytes, printJson } from '../render.ts';

export interface PromoteFlags {
  oldPrimaryFenced?: boolean;
  fencingCommand?: string;
  maxLagBytes?: string;
}

/**
 * `warden promote NAME`: the guarded runbook for bare streaming replication (see ha/promote.ts):
 * refuses unless the old primary is known fenced and NAME is the most advanced standby.
 */
export async function promoteCommand(
  context: CommandContext,
  name: string,
  flags: PromoteFlags,
): Promise<number> {
  const streamed = (await context.store.stat(META_KEY).catch(() => undefined)) !== undefined;
  const report = await promote({
    connection: context.cluster(),
    candidate: name,
    ...(flags.oldPrimaryFenced ? { oldPrimaryFenced: true } : {}),
    ...(flags.fencingCommand
      ? { fencingCommand: splitCommand(flags.fencingCommand, '--fencing-command') }
      : {}),
    ...(flags.maxLagBytes !== undefined ? { maxLagBytes: Number(flags.maxLagBytes) } : {}),
    ...(streamed ? { store: context.store } : {}),
  });
  if (context.json) printJson(report);
  else {
    process.stdout.write(
      `promoted ${report.promoted} (old primary fenced by ${report.fencedBy === 'flag' ? '--old-primary-fenced' : 'the fencing command'}): timeline ${report.timeline}${report.forkLsn ? `, forked at ${report.forkLsn}` : ''}\n`,
    );
    const lost = report.oldPrimaryOnly;
    process.stdout.write(
      lost
        ? `  the old primary had WAL the new one lacks: ${lost.from}..${lost.to} on timeline ${lost.timeline} (${formatBytes(lost.bytes)}), kept in the repository on the old timeline\n`
        : '  the repository holds no WAL of the old primary past the fork\n',
    );
  }
  return 0;
}
