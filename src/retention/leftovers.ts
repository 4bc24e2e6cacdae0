import type { ObjectStore } from '../repository/object-store.ts';
import { lockHolder } from '../repository/repository-lock.ts';
import { deleteBackupObjects } from './delete-backup.ts';

/**
 * What interrupted commands leave behind that no record points to: nothing restorable depends
 * on it, nothing lists it, and without this it would stay forever. `warden verify` reports it,
 * the next `warden expire` removes it.
 */
export interface Leftovers {
  /**
   * Backup directories with objects but no `backup.json`: an expire stopped between uncommitting
   * a backup and deleting its objects, or a backup killed before its commit.
   */
  uncommittedBackups: Array<{ id: string; objects: number }>;
  /** WAL data objects without their `.json` record (an expire stopped between the two deletes). */
  walWithoutRecord: string[];
  /** Directories that hold no file (directory repositories), e.g. of a backup killed early. */
  emptyDirectories: string[];
  /** What was not looked at because a writer is running, and why. */
  skipped: string[];
}

export function leftoverCount(leftovers: Leftovers): number {
  return (
    leftovers.uncommittedBackups.length +
    leftovers.walWithoutRecord.length +
    leftovers.emptyDirectories.length
  );
}

const BACKUP_DIR = /^backups\/([^/]+)\//;
const WAL_DATA = /^wal\/([0-9A-F]{8})\/([0-9A-F]{24})\.zst$/;

/**
 * Finds the leftovers, never mistaking the work of a running writer for them:
 * - backup directories only when no backup is running — `holdingBackupLock` when the caller
 *   holds the `backup` lock itself (expire), else a live `backup` lock skips them (verify);
 * - WAL data without a record only where no receiver can still be writing it: a segment's data
 *   is stored before its record, while its `.partial` still exists. So one with a `.partial`
 *   beside it is never a leftover, and while a receiver holds `wal-stream` only those behind the
 *   archive's head (an older segment than its timeline's newest record, or of an older timeline)
 *   count;
 * - empty directories under `wal/` only while no receiver runs (it may be about to write there).
 */
export async function findLeftovers(
  store: ObjectStore,
  options: { holdingBackupLock?: boolean } = {},
): Promise<Leftovers> {
  const leftovers: Leftovers = {
    uncommittedBackups: [],
    walWithoutRecord: [],
    emptyDirectories: [],
    skipped: [],
  };
  const backupRunning = !options.holdingBackupLock && (await lockHolder(store, 'backup')) !== undefined;
  if (backupRunning) {
    leftovers.skipped.push('backups/: a backup is running');
  } else {
    const objects = new Map<string, number>();
    const committed = new Set<string>();
    for (const key of await store.list('backups/', { includeIncomplete: true })) {
      const id = BACKUP_DIR.exec(key)?.[1];
      if (id === undefined) continue;
      objects.set(id, (objects.get(id) ?? 0) + 1);
      if (key === `backups/${id}/backup.json`) committed.add(id);
    }
    for (const [id, count] of objects) {
      if (!committed.has(id)) leftovers.uncommittedBackups.push({ id, objects: count });
    }
    leftovers.emptyDirectories.push(...((await store.listEmptyDirectories?.('backups/')) ?? []));
  }

  const receiverRunning = (await lockHolder(store, 'wal-stream')) !== undefined;
  const walKeys = new Set(await store.list('wal/'));
  // The newest recorded segment of each timeline: the archive's head there.
  const head = new Map<number, string>();
  for (const key of walKeys) {
    const match = /^wal\/([0-9A-F]{8})\/([0-9A-F]{24})\.json$/.exec(key);
    if (!match) continue;
    const timeline = parseInt(match[1]!, 16);
    if ((head.get(timeline) ?? '') < match[2]!) head.set(timeline, match[2]!);
  }
  const newestTimeline = Math.max(0, ...head.keys());
  for (const key of walKeys) {
    const match = WAL_DATA.exec(key);
    if (!match) continue;
    const base = key.slice(0, -'.zst'.length);
    if (walKeys.has(`${base}.json`) || walKeys.has(`${base}.partial`)) continue;
    const timeline = parseInt(match[1]!, 16);
    const behindHead = match[2]! < (head.get(timeline) ?? '') || timeline < newestTimeline;
    if (behindHead || !receiverRunning) leftovers.walWithoutRecord.push(key);
  }
  leftovers.walWithoutRecord.sort();
  if (receiverRunning) leftovers.skipped.push('empty directories in wal/: a WAL receiver is running');
  else leftovers.emptyDirectories.push(...((await store.listEmptyDirectories?.('wal/')) ?? []));
  return leftovers;
}

/**
 * Removes what `findLeftovers` found, checking each again first (a record written meanwhile
 * keeps its object). The caller holds the `backup` lock. Returns how many were removed.
 */
export async function removeLeftovers(
  store: ObjectStore,
  leftovers: Leftovers,
  beforeEach: () => void = () => undefined,
): Promise<number> {
  let removed = 0;
  for (const { id } of leftovers.uncommittedBackups) {
    beforeEach();
    if (await store.stat(`backups/${id}/backup.json`)) continue;
    await deleteBackupObjects(store, id);
    removed += 1;
  }
  for (const key of leftovers.walWithoutRecord) {
    beforeEach();
    const base = key.slice(0, -'.zst'.length);
    if ((await store.stat(`${base}.json`)) || (await store.stat(`${base}.partial`))) continue;
    await store.delete(key);
    removed += 1;
  }
  for (const key of leftovers.emptyDirectories) {
    beforeEach();
    if (await store.removeEmptyDirectory?.(key)) removed += 1;
  }
  return removed;
}
