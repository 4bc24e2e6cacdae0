import { describeOrigin } from '../backup-origin-text.ts';
import { takeBackup } from '../../backup/base-backup.ts';
import { parseBackupFrom, type BackupFrom } from '../../backup/backup-from.ts';
import type { CommandContext } from '../context.ts';
import { warnIdleSlot } from '../slot-warning.ts';
import { byteProgressBar } from '../progress-bar.ts';
import { formatBytes, formatDuration, printJson, printSteps } from '../render.ts';

export interface BackupFlags {
  name?: string;
  incremental?: boolean;
  /** `primary`, `standby`, `standby-or-primary`, a member name or a standby's URL: where BASE_BACKUP runs. */
  from?: string;
}

/** `warden backup [--incremental]`: a physical base backup now. */
export async function backupCommand(
  context: CommandContext,
  flags: BackupFlags,
  signal?: AbortSignal,
): Promise<number> {
  const { config } = context;
  const showProgress = process.stdout.isTTY && !context.json;
  const bar = showProgress ? byteProgressBar('backup') : undefined;
  await warnIdleSlot(context);
  const report = await takeBackup({
    connection: context.cluster(),
    from: backupFrom(flags.from, config.backupFrom),
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
    ...(signal ? { signal } : {}),
    onProgress: (done, total) => bar?.update(done, total),
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
  const origin = describeOrigin(backup.takenFrom);
  if (origin) process.stdout.write(`  taken on ${origin}\n`);
  printSteps(report.steps);
  process.stdout.write(
    `  ${formatBytes(raw)} of data stored as ${formatBytes(stored)} (${backup.compression}), LSN ${backup.startLsn} .. ${backup.endLsn}, ${formatDuration(backup.durationMs)}\n`,
  );
  return 0;
}

/**
 * `--from` beats WARDEN_BACKUP_FROM and `cluster.backup.from` (config.backupFrom, `primary` by
 * default): `primary`, `standby`, `standby-or-primary`, a member name or a standby's URL (its
 * password as for --db: ~/.pgpass, PGPASSWORD or the URL).
 */
function backupFrom(flag: string | undefined, configured: BackupFrom): BackupFrom {
  return flag === undefined ? configured : parseBackupFrom(flag, '--from');
}
