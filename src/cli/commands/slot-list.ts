import { listSlots } from '../../backup/slot-admin.ts';
import type { CommandContext } from '../context.ts';
import { formatBytes, printJson, table } from '../render.ts';
import { openRepositoryIfAny } from '../slot-warning.ts';

/** `warden slot list`: the cluster's replication slots, whose they are and what WAL they keep. */
export async function slotListCommand(context: CommandContext): Promise<number> {
  const repository = await openRepositoryIfAny(context);
  const report = await listSlots(context.cluster(), repository);
  if (context.json) {
    printJson(report);
    return 0;
  }
  if (report.slots.length === 0) {
    process.stdout.write('no replication slots\n');
    return 0;
  }
  process.stdout.write(
    `${table(
      ['slot', 'owner', 'active', 'retained WAL', 'wal_status'],
      report.slots.map((slot) => [
        `${slot.name}${slot.temporary ? ' (temporary)' : ''}`,
        slot.owner,
        slot.active ? `yes (pid ${slot.activePid ?? '?'})` : 'no',
        slot.retainedBytes !== undefined ? formatBytes(slot.retainedBytes) : '-',
        slot.walStatus ?? '-',
      ]),
    )}\n`,
  );
  for (const slot of report.slots) {
    if (slot.own && !slot.active && (slot.retainedBytes ?? 0) > 0)
      process.stderr.write(
        `warning: slot ${slot.name} of this repository is inactive and keeps ${formatBytes(slot.retainedBytes ?? 0)} of WAL on the server\n`,
      );
    if (slot.walStatus === 'lost')
      process.stderr.write(
        `warning: slot ${slot.name} was invalidated (wal_status lost): its consumer misses WAL\n`,
      );
  }
  return 0;
}
