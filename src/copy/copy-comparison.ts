import { isWardenError } from '../errors.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { backupPrefix, listBackups } from '../repository/backup-catalog.ts';
import { dumpRecordKey, listDumps } from '../repository/dump-catalog.ts';
import { dataObjectTimes } from '../repository/object-ages.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { readWalInventory, segmentDataKey, segmentRecordKey } from '../repository/wal-archive.ts';

/** `warden status` without a daemon: how far a `copyTo` target is behind, read from both repositories. */
export interface CopyComparison {
  target: string;
  location: string;
  reachable: boolean;
  error?: { code: string; message: string };
  /** Committed objects of the source the copy lacks (by their commit markers). */
  missing?: { backups: number; segments: number; dumps: number };
  /**
   * 0 when the copy holds everything committed; else the age of the oldest committed object it
   * lacks (absent when that object carries no time, e.g. a segment without commits).
   */
  lagSeconds?: number;
}

/** Compares by commit markers only (two listings and the source's records): no data is read. */
export async function compareCopy(
  name: string,
  source: ObjectStore,
  target: ObjectStore,
  options: { keys?: RepositoryKeys; now?: Date } = {},
): Promise<CopyComparison> {
  const base = { target: name, location: target.location };
  const repository = await Repository.open(source, options.keys);
  const backups = await listBackups(repository);
  const dumps = await listDumps(repository);
  const { segments } = await readWalInventory(repository);
  let present: Set<string>;
  try {
    present = new Set(await target.list(''));
  } catch (error) {
    if (!isWardenError(error)) throw error;
    return { ...base, reachable: false, error: { code: error.code, message: error.message } };
  }
  const times = dataObjectTimes({ backups, dumps, segments });
  const missingTimes: Array<Date | undefined> = [];
  const missing = { backups: 0, segments: 0, dumps: 0 };
  for (const backup of backups) {
    if (present.has(`${backupPrefix(backup.id)}backup.json`)) continue;
    missing.backups += 1;
    missingTimes.push(new Date(backup.endTime));
  }
  for (const dump of dumps) {
    if (present.has(dumpRecordKey(dump.id))) continue;
    missing.dumps += 1;
    missingTimes.push(new Date(dump.endTime));
  }
  for (const records of segments.values()) {
    for (const record of records) {
      if (present.has(segmentRecordKey(record.timeline, record.segment))) continue;
      missing.segments += 1;
      missingTimes.push(times.get(segmentDataKey(record.timeline, record.segment)));
    }
  }
  const nowMs = (options.now ?? new Date()).getTime();
  if (missingTimes.length === 0) return { ...base, reachable: true, missing, lagSeconds: 0 };
  const known = missingTimes.filter((t): t is Date => t !== undefined).map((t) => t.getTime());
  return {
    ...base,
    reachable: true,
    missing,
    ...(known.length ? { lagSeconds: Math.max(0, (nowMs - Math.min(...known)) / 1000) } : {}),
  };
}
