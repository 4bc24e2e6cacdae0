import { backupObjects, type BackupRecord } from './backup-catalog.ts';
import type { DumpRecord } from './dump-catalog.ts';
import { segmentDataKey, type SegmentRecord } from './wal-archive.ts';

/**
 * When each committed data object of a repository was written, as far as its records tell, for
 * the age rules of storage classes: a backup's archives, manifest and basis by the backup's end
 * time, a dump's object by the dump's end time, and a WAL segment by its last commit time. A
 * segment without commits (idle WAL, a switch) takes the time of the last segment before it
 * that had one, so WAL ages along with the backups it follows; segments before any known time
 * have no age and stay in the bucket's default class. Records (`.json`) are never listed: they
 * stay in the default class so listing, verification and restore planning never need a retrieval.
 */
export function dataObjectTimes(parts: {
  backups: readonly BackupRecord[];
  dumps: readonly DumpRecord[];
  segments: ReadonlyMap<number, readonly SegmentRecord[]>;
}): Map<string, Date> {
  const times = new Map<string, Date>();
  for (const backup of parts.backups) {
    const at = new Date(backup.endTime);
    for (const object of backupObjects(backup)) times.set(object.key, at);
  }
  for (const dump of parts.dumps) times.set(dump.object.key, new Date(dump.endTime));
  for (const records of parts.segments.values()) {
    let last: Date | undefined;
    for (const record of records) {
      if (record.lastCommitTime) last = new Date(record.lastCommitTime);
      if (last) times.set(segmentDataKey(record.timeline, record.segment), last);
    }
  }
  return times;
}
