import { listBackups, type BackupRecord } from '../repository/backup-catalog.ts';
import { listDumps } from '../repository/dump-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { readWalInventory } from '../repository/wal-archive.ts';
import { unixSeconds, type ClusterSnapshot, type LastBackupFacts } from '../monitoring/cluster-snapshot.ts';
import { listDrills } from '../verify/drill.ts';
import { listVerifications } from '../verify/restore-check.ts';
import type { ClusterStatus } from './cluster-status.ts';
import type { ClusterPlan } from './daemon-config.ts';
import { collectClusterStatus, type StatusInputs } from './status.ts';

/**
 * One cluster's snapshot for the metrics: the status `warden status` computes (repository,
 * server, stream, window, objectives, jobs) plus what only the metrics show (the newest backup
 * of each kind with its sizes, the newest passed verification, the repository's size). Runs in
 * the background (SnapshotCache), never per scrape.
 */
export async function collectMetricsSnapshot(inputs: StatusInputs): Promise<ClusterSnapshot> {
  const now = inputs.now ?? new Date();
  const status = await collectClusterStatus({ ...inputs, now });
  const snapshot: ClusterSnapshot = {
    cluster: inputs.plan.name,
    repository: inputs.store.location,
    takenAt: now.getTime() / 1000,
    walStreaming: inputs.plan.walStreaming,
    reachable: status.repository.reachable,
    objectives: { rtoSeconds: status.objectives.rtoMs / 1000, rpoSeconds: status.objectives.rpoMs / 1000 },
    ...(inputs.plan.retention.recoveryWindowMs !== undefined
      ? { recoveryWindowSeconds: inputs.plan.retention.recoveryWindowMs / 1000 }
      : {}),
    lastBackups: {},
    jobs: jobRuns(status),
    ...(status.rpoExposureSeconds !== undefined ? { rpoExposureSeconds: status.rpoExposureSeconds } : {}),
    ...(status.walStream.slot?.retainedBytes !== undefined
      ? { slotRetainedBytes: status.walStream.slot.retainedBytes }
      : {}),
    stream: {
      up: status.walStream.state === 'streaming',
      ...(status.walStream.lagBytes !== undefined ? { lagBytes: status.walStream.lagBytes } : {}),
      ...(status.walStream.caughtUpAt ? { caughtUpAt: unixSeconds(status.walStream.caughtUpAt) } : {}),
    },
  };
  if (status.restorableWindow) snapshot.window = windowFacts(status, inputs.plan, now);
  if (status.repository.reachable) {
    // The status read the same catalog a moment ago; read failures now leave these out.
    await addCatalogFacts(snapshot, inputs.store).catch(() => undefined);
  }
  return snapshot;
}

/** The newest range's ends, and the gaps that end a range inside the retention promise. */
function windowFacts(status: ClusterStatus, plan: ClusterPlan, now: Date): ClusterSnapshot['window'] {
  const window = status.restorableWindow!;
  const promiseStart =
    plan.retention.recoveryWindowMs !== undefined
      ? now.getTime() - plan.retention.recoveryWindowMs
      : -Infinity;
  return {
    ...(window.earliest ? { start: unixSeconds(window.earliest) } : {}),
    ...(window.latest ? { end: unixSeconds(window.latest) } : {}),
    gaps: window.ranges.filter((range) => range.gapAfter && Date.parse(range.latest) >= promiseStart).length,
  };
}

function jobRuns(status: ClusterStatus): ClusterSnapshot['jobs'] {
  return status.jobs.flatMap((job) =>
    [job.lastRun, job.lastSuccess].flatMap((run) =>
      run ? [{ job: job.name, outcome: run.status, at: unixSeconds(run.finishedAt) }] : [],
    ),
  );
}

async function addCatalogFacts(snapshot: ClusterSnapshot, store: ObjectStore): Promise<void> {
  const repository = await Repository.open(store);
  const backups = await listBackups(repository);
  const dumps = await listDumps(repository);
  const inventory = await readWalInventory(repository);
  for (const kind of ['full', 'incremental'] as const) {
    const last = backups.filter((b) => b.kind === kind).at(-1);
    if (last) snapshot.lastBackups[kind] = backupFacts(last);
  }
  const dump = dumps.at(-1);
  if (dump)
    snapshot.lastBackups.dump = {
      at: unixSeconds(dump.endTime),
      durationSeconds: dump.durationMs / 1000,
      dataBytes: dump.object.rawSize,
      storedBytes: dump.object.size,
    };
  let size = 0;
  for (const backup of backups) size += storedBytes(backup);
  for (const d of dumps) size += d.object.size;
  for (const records of inventory.segments.values()) for (const segment of records) size += segment.size;
  snapshot.sizeBytes = size;
  const verifications = await listVerifications(store);
  const lastVerification = verifications.at(-1);
  if (lastVerification) {
    const passed = verifications.filter((v) => v.passed).at(-1);
    snapshot.verification = {
      at: unixSeconds(lastVerification.finishedAt),
      passed: lastVerification.passed,
      ...(passed ? { lastSuccessAt: unixSeconds(passed.finishedAt) } : {}),
    };
  }
  const drill = (await listDrills(store)).at(-1);
  if (drill)
    snapshot.drill = {
      at: unixSeconds(drill.finishedAt),
      passed: drill.passed,
      rtoSeconds: drill.measured.rtoMs / 1000,
      ...(drill.measured.rpoMs !== undefined ? { rpoSeconds: drill.measured.rpoMs / 1000 } : {}),
      ...(drill.migration && drill.migration.status !== 'skipped'
        ? { migrationPassed: drill.migration.status === 'passed' }
        : {}),
    };
}

function backupFacts(backup: BackupRecord): LastBackupFacts {
  return {
    at: unixSeconds(backup.endTime),
    durationSeconds: backup.durationMs / 1000,
    dataBytes: backup.archives.reduce((sum, archive) => sum + archive.rawSize, 0),
    storedBytes: storedBytes(backup),
  };
}

function storedBytes(backup: BackupRecord): number {
  return [backup.manifest, ...backup.archives].reduce((sum, object) => sum + object.size, 0);
}
