import cliProgress from 'cli-progress';
import { takeBackup } from '../../backup/base-backup.ts';
import type { CommandContext } from '../context.ts';
import { warnIdleSlot } from '../slot-warning.ts';
import { formatBytes, formatDuration, printJson, printSteps } from '../render.ts';

export interface BackupFlags {
  name?: string;
  incremental?: boolean;
}

/** `warden backup [--incremental]`: a physical base backup now. */
export async function backupCommand(context: CommandContext, flags: BackupFlags): Promise<number> {
  const { config } = context;
  const showProgress = process.stdout.isTTY && !context.json;
  const bar = showProgress
    ? new cliProgress.SingleBar(
        { format: 'backup |{bar}| {percentage}% {done}/{total}', hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let started = false;
  await warnIdleSlot(context);
  const report = await takeBackup({
    connection: context.cluster(),
    store: context.store,
    ...(config.slot !== undefined ? { slotName: config.slot } : {}),
    compression: config.repository.compression,
    ...(config.repository.compressionLevel !== undefined
      ? { compressionLevel: config.repository.compressionLevel }
      : {}),
    serverCompression: config.repository.serverCompression,
    ...(flags.name ? { name: flags.name } : {}),
    ...(flags.incremental ? { incremental: 'require' as const } : {}),
    keys: await context.writeKeys(),
    logger: context.logger,
    onProgress: (done, total) => {
      if (!bar) return;
      if (!started) bar.start(total, 0, { done: formatBytes(0), total: formatBytes(total) });
      started = true;
      bar.update(Math.min(done, total), { done: formatBytes(done), total: formatBytes(total) });
    },
  }).finally(() => bar?.stop());
  if (context.json) {
    printJson(report);
    return 0;
  }
  const backup = report.backup;
  const raw = backup.archives.reduce((n, a) => n + a.rawSize, 0);
  const stored = backup.archives.reduce((n, a) => n + a.size, 0) + backup.manifest.size;
  const kind = backup.kind === 'incremental' ? `incremental on ${backup.parent}` : 'full';
  process.stdout.write(
    `backup ${backup.id}${backup.name ? ` (${backup.name})` : ''} (${kind}) committed to ${context.store.location}\n`,
  );
  printSteps(report.steps);
  process.stdout.write(
    `  ${formatBytes(raw)} of data stored as ${formatBytes(stored)} (${backup.compression}), LSN ${backup.startLsn} .. ${backup.endLsn}, ${formatDuration(backup.durationMs)}\n`,
  );
  return 0;
}
