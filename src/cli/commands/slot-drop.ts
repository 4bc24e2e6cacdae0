import { dropSlot } from '../../backup/slot-admin.ts';
import type { CommandContext } from '../context.ts';
import { formatBytes, printJson } from '../render.ts';
import { openRepositoryIfAny } from '../slot-warning.ts';

export interface SlotDropFlags {
  force?: boolean;
}

/**
 * `warden slot drop <name> [--force]`: drops a replication slot; refuses while the repository
 * lacks WAL the slot holds (or the slot is not the repository's) unless forced.
 */
export async function slotDropCommand(
  context: CommandContext,
  name: string,
  flags: SlotDropFlags,
): Promise<number> {
  const report = await dropSlot({
    connection: context.cluster(),
    repository: await openRepositoryIfAny(context),
    name,
    ...(flags.force ? { force: true } : {}),
  });
  if (context.json) printJson(report);
  else {
    process.stdout.write(`dropped slot ${report.slot} (${report.owner})\n`);
    if (report.lost)
      process.stdout.write(
        `  WAL ${report.lost.from}..${report.lost.to} (${formatBytes(report.lost.bytes)}) was not archived and may now be removed by the server: take a new full backup\n`,
      );
  }
  return 0;
}
