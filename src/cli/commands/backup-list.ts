import { describeOrigin } from '../backup-origin-text.ts';
import { getBackup, listBackups, type BackupRecord } from '../../repository/backup-catalog.ts';
import { backupChain } from '../../repository/backup-chain.ts';
import { Repository } from '../../repository/repository.ts';
import { readWalInventory } from '../../repository/wal-archive.ts';
import {
  restorableWindow,
  type RestorableRange,
  type RestorableWindow,
} from '../../repository/restorable-window.ts';
import type { CommandContext } from '../context.ts';
import { formatBytes, formatDuration, printJson, table } from '../render.ts';

/** `warden backup list`: every committed backup and the restorable window. */
export async function backupListCommand(context: CommandContext): Promise<number> {
  const repository = await Repository.open(context.store);
  const backups = await listBackups(repository);
  const window = restorableWindow(
    backups,
    await readWalInventory(repository),
    repository.meta.walSegmentSize,
  );
  if (context.json) {
    printJson({ repository: repository.location, systemId: repository.meta.systemId, backups, window });
    return 0;
  }
  process.stdout.write(`repository ${repository.location} (cluster ${repository.meta.systemId})\n\n`);
  if (backups.length === 0) process.stdout.write('no backups yet\n');
  else {
    const rows = backups.map((b) => [
      b.id,
      b.kind === 'incremental' ? `incr on ${b.parent}` : 'full',
      b.name ?? '',
      b.endTime.replace('T', ' ').slice(0, 19),
      formatBytes(b.archives.reduce((n, a) => n + a.rawSize, 0)),
      formatBytes(b.archives.reduce((n, a) => n + a.size, 0)),
      `${b.startLsn}..${b.endLsn}`,
      formatDuration(b.durationMs),
    ]);
    process.stdout.write(
      `${table(['ID', 'KIND', 'NAME', 'CONSISTENT AT (UTC)', 'SIZE', 'STORED', 'LSN', 'DURATION'], rows)}\n`,
    );
  }
  process.stdout.write(`\n${describeWindow(window)}\n`);
  return 0;
}

/** `warden backup show ID`. */
export async function backupShowCommand(context: CommandContext, id: string): Promise<number> {
  const repository = await Repository.open(context.store);
  const backup = await getBackup(repository, id);
  if (context.json) {
    printJson(backup);
    return 0;
  }
  process.stdout.write(
    [
      `backup     ${backup.id}${backup.name ? ` (${backup.name})` : ''}`,
      `kind       ${backup.kind === 'incremental' ? `incremental on ${backup.parent} (restore reads ${chainText(backup, await listBackups(repository))})` : 'full'}`,
      `cluster    ${backup.systemId}, PostgreSQL ${backup.serverVersion}, timeline ${backup.timeline}`,
      `LSN        ${backup.startLsn} .. ${backup.endLsn}`,
      `time       ${backup.startTime} .. ${backup.endTime} (${formatDuration(backup.durationMs)})`,
      `compression ${backup.compression} on ${backup.compressedOn}`,
      ...(describeOrigin(backup.takenFrom) ? [`taken on   ${describeOrigin(backup.takenFrom)}`] : []),
      'objects:',
      ...[...backup.archives, backup.manifest].map(
        (o) =>
          `  ${o.key}  ${formatBytes(o.rawSize)} -> ${formatBytes(o.size)}  sha256 ${o.sha256.slice(0, 16)}…`,
      ),
    ].join('\n') + '\n',
  );
  return 0;
}

function chainText(backup: BackupRecord, all: readonly BackupRecord[]): string {
  try {
    return backupChain(backup, all)
      .map((b) => b.id)
      .join(' + ');
  } catch {
    return `a broken chain: ${backup.parent} or an older link is missing`;
  }
}

export function describeWindow(window: RestorableWindow): string {
  const lines: string[] = [];
  const range = (r: RestorableRange) =>
    `${r.earliest} .. ${r.latest} (timeline ${r.timeline}, LSN ${r.earliestLsn} .. ${r.latestLsn}; from backup${r.backups.length > 1 ? 's' : ''} ${r.backups.join(', ')})`;
  if (window.ranges.length === 0) lines.push('restorable window: empty (no backup with its WAL yet)');
  else if (window.ranges.length === 1) lines.push(`restorable window: ${range(window.ranges[0]!)}`);
  else {
    lines.push(`restorable window: ${window.ranges.length} ranges, separated by WAL gaps`);
    for (const r of window.ranges) lines.push(`  ${range(r)}`);
  }
  for (const gap of window.gaps)
    lines.push(
      `  WAL gap: ${gap.from} .. ${gap.to} (first missing segment ${gap.firstMissingSegment}) — PITR impossible inside it`,
    );
  return lines.join('\n');
}
