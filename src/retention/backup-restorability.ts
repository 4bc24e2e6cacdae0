import type { BackupRecord } from '../repository/backup-catalog.ts';
import { walRanges } from '../repository/restorable-window.ts';
import type { WalInventory } from '../repository/wal-archive.ts';
import { parseLsn } from '../wal/lsn.ts';

// Which backups the WAL archive lets restore: at all, and to the end of the archive.

/** The backup's WAL from start to end LSN is in the archive on its timeline (so it can be restored). */
export function isRestorable(backup: BackupRecord, inventory: WalInventory, segmentSize: number): boolean {
  const start = parseLsn(backup.startLsn);
  const end = parseLsn(backup.endLsn);
  return walRanges(inventory, backup.timeline, segmentSize).some((r) => r.start <= start && r.end >= end);
}

export /**
 * Backups a restore to the end of the archive can start from, as the restorable window counts
 * them: inside the last continuous WAL range of the newest timeline, and on its branch.
 */
function windowUsable(
  sorted: readonly BackupRecord[],
  inventory: WalInventory,
  segmentSize: number,
  current: number | undefined,
  onCurrent: (b: BackupRecord) => boolean,
): Set<BackupRecord> {
  const range = current === undefined ? undefined : walRanges(inventory, current, segmentSize).at(-1);
  if (!range) return new Set();
  return new Set(
    sorted.filter(
      (b) => onCurrent(b) && parseLsn(b.startLsn) >= range.start && parseLsn(b.endLsn) <= range.end,
    ),
  );
}
