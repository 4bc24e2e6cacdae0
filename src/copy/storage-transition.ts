import { isWardenError } from '../errors.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { listBackups } from '../repository/backup-catalog.ts';
import { listDumps } from '../repository/dump-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { readWalInventory } from '../repository/wal-archive.ts';
import { dataObjectTimes } from '../repository/object-ages.ts';
import { storageClassFor, type StorageClassRule } from '../repository/storage-class-rules.ts';

export interface TransitionReport {
  location: string;
  /** Data objects whose age calls for a class. */
  checked: number;
  moved: Array<{ key: string; from: string; to: string }>;
  /** Objects that could not be moved now (in an archive class: a move out needs a retrieval). */
  skipped: Array<{ key: string; code: string }>;
}

/**
 * The transition job: moves every committed data object whose age now calls for another class
 * into it (CopyObject onto itself). The listing's class is taken first (one request for a
 * thousand objects); an object it says is elsewhere is asked once more with HeadObject before it
 * is rewritten, because some S3-compatible servers list every object as STANDARD. Idempotent:
 * a second run moves nothing. A store without storage classes (a directory) is left alone.
 */
export async function transitionStorageClasses(
  store: ObjectStore,
  rules: readonly StorageClassRule[],
  options: { keys?: RepositoryKeys; now?: Date; signal?: AbortSignal } = {},
): Promise<TransitionReport> {
  const report: TransitionReport = { location: store.location, checked: 0, moved: [], skipped: [] };
  if (!rules.length || !store.setStorageClass || !store.storageClassOf || !store.listStorageClasses)
    return report;
  const repository = await Repository.open(store, options.keys);
  const times = dataObjectTimes({
    backups: await listBackups(repository),
    dumps: await listDumps(repository),
    segments: (await readWalInventory(repository)).segments,
  });
  const listed = await store.listStorageClasses('');
  const nowMs = (options.now ?? new Date()).getTime();
  for (const [key, at] of times) {
    const wanted = storageClassFor(nowMs - at.getTime(), rules);
    if (!wanted) continue;
    report.checked += 1;
    if (listed.get(key) === wanted) continue;
    if (options.signal?.aborted) break;
    const actual = await store.storageClassOf(key);
    if (actual === wanted) continue;
    try {
      await store.setStorageClass(key, wanted);
      report.moved.push({ key, from: actual, to: wanted });
    } catch (error) {
      if (!isWardenError(error, 'WARDEN_E_OBJECT_ARCHIVED')) throw error;
      report.skipped.push({ key, code: error.code });
    }
  }
  return report;
}
