import { toWardenError } from '../errors.ts';
import { backupObjects, listBackups } from '../repository/backup-catalog.ts';
import { completeChains } from '../repository/backup-chain.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { restorableWindow } from '../repository/restorable-window.ts';
import { readWalInventory } from '../repository/wal-archive.ts';
import { listDrills } from '../verify/drill.ts';
import { listVerifications } from '../verify/restore-check.ts';

/** One backup as the dashboard lists it. */
export interface BackupView {
  id: string;
  name?: string;
  kind: 'full' | 'incremental';
  parent?: string;
  startTime: string;
  endTime: string;
  durationMs: number;
  /** Bytes in the repository (compressed, encrypted) and before compression. */
  storedBytes: number;
  dataBytes: number;
  encrypted: boolean;
  /** Every backup its restore needs is present (always true for a full backup). */
  chainComplete: boolean;
  /** A restore can start from it: it anchors a range of the restorable window. */
  restorable: boolean;
  /** The newest verification restore of this backup. */
  verification?: { startedAt: string; passed: boolean; failed: string[] };
}

/** One DR drill as the dashboard lists it. */
export interface DrillView {
  startedAt: string;
  finishedAt: string;
  passed: boolean;
  rtoMs: number;
  rpoMs?: number;
  objectives: { rtoMs: number; rpoMs: number };
  failures: string[];
}

export interface ClusterCatalog {
  name: string;
  /** Oldest first. */
  backups: BackupView[];
  /** Newest first, at most {@link RECENT_DRILLS}. */
  drills: DrillView[];
  /** The repository could not be read; the lists are then empty. */
  error?: { code: string; message: string };
}

export const RECENT_DRILLS = 10;

/** What one cluster's repository holds, for `GET /api/catalog`. */
export async function clusterCatalog(name: string, store: ObjectStore): Promise<ClusterCatalog> {
  try {
    const repository = await Repository.open(store);
    const backups = await listBackups(repository);
    const inventory = await readWalInventory(repository);
    const window = restorableWindow(backups, inventory, repository.meta.walSegmentSize);
    const anchors = new Set(window.ranges.flatMap((r) => r.backups));
    const complete = new Set(completeChains(backups).map((b) => b.id));
    const verified = new Map<string, BackupView['verification']>();
    // Oldest first: the newest verification of each backup is the one kept.
    for (const v of await listVerifications(store)) {
      if (v.backupId)
        verified.set(v.backupId, {
          startedAt: v.startedAt,
          passed: v.passed,
          failed: v.checks.filter((c) => c.status === 'failed').map((c) => c.name),
        });
    }
    const drills = (await listDrills(store)).slice(-RECENT_DRILLS).reverse();
    return {
      name,
      backups: backups.map((b) => {
        const objects = backupObjects(b);
        const verification = verified.get(b.id);
        return {
          id: b.id,
          ...(b.name ? { name: b.name } : {}),
          kind: b.kind,
          ...(b.parent ? { parent: b.parent } : {}),
          startTime: b.startTime,
          endTime: b.endTime,
          durationMs: b.durationMs,
          storedBytes: objects.reduce((sum, o) => sum + o.size, 0),
          dataBytes: objects.reduce((sum, o) => sum + o.rawSize, 0),
          encrypted: b.encryption !== undefined,
          chainComplete: complete.has(b.id),
          restorable: anchors.has(b.id),
          ...(verification ? { verification } : {}),
        };
      }),
      drills: drills.map((d) => ({
        startedAt: d.startedAt,
        finishedAt: d.finishedAt,
        passed: d.passed,
        rtoMs: d.measured.rtoMs,
        ...(d.measured.rpoMs !== undefined ? { rpoMs: d.measured.rpoMs } : {}),
        objectives: d.objectives,
        failures: d.failures,
      })),
    };
  } catch (error) {
    const wrapped = toWardenError(error);
    return { name, backups: [], drills: [], error: { code: wrapped.code, message: wrapped.message } };
  }
}
