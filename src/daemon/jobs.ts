import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { Logger } from 'pino';
import { takeBackup } from '../backup/base-backup.ts';
import { takeDump } from '../backup/logical-dump.ts';
import { connect } from '../postgres/connect.ts';
import { WardenError } from '../errors.ts';
import type { Compression } from '../pipeline/compression.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { listBackups } from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { readWalInventory } from '../repository/wal-archive.ts';
import { restorableWindow } from '../repository/restorable-window.ts';
import { expire } from '../retention/expire.ts';
import type { JobDefinition, JobOutcome, OnDemandJob } from '../scheduler/scheduler.ts';
import { assessWalGaps, listWalGaps, type WalGapState } from '../repository/wal-gap-incidents.ts';
import { describeDuration } from '../util/duration.ts';
import { recordDrill, runDrill } from '../verify/drill.ts';
import { listVerifications, recordVerification, verifyRestore } from '../verify/restore-check.ts';
import type { ClusterPlan } from './daemon-config.ts';
import type { ObservedOptions } from '../events/observed.ts';
import { redisBackupJobs } from './redis-backup-jobs.ts';

export interface JobDeps extends ObservedOptions {
  plan: ClusterPlan;
  connection: ConnectionConfig;
  store: ObjectStore;
  compression: Compression;
  keys?: RepositoryKeys;
  logger: Logger;
}

/** The scheduled jobs of one cluster, in the order they run when several are due together. */
export function buildJobs(deps: JobDeps): JobDefinition[] {
  const { plan } = deps;
  const jobs: JobDefinition[] = [];
  const add = (name: keyof ClusterPlan['schedules'], job: Omit<JobDefinition, 'name' | 'schedule'>) => {
    const schedule = plan.schedules[name];
    if (schedule) jobs.push({ name, schedule, ...job });
  };
  // The weekly slot takes a full backup; the 6-hourly one an incremental on PostgreSQL 17+
  // (summarize_wal on), else a full one, with the reason in the run's detail.
  const backup =
    (incremental: boolean) =>
    async ({ signal }: { signal: AbortSignal }): Promise<JobOutcome> => {
      const report = await takeBackup({
        connection: deps.connection,
        store: deps.store,
        slotName: plan.slot,
        from: plan.backupFrom,
        compression: deps.compression,
        ...(incremental ? { incremental: 'prefer' as const } : {}),
        ...(deps.keys ? { keys: deps.keys } : {}),
        logger: deps.logger,
        signal,
        ...observed(deps),
      });
      const { id, kind, parent } = report.backup;
      const what = kind === 'incremental' ? `incremental backup ${id} on ${parent}` : `full backup ${id}`;
      return { status: 'succeeded', detail: report.fallback ? `${what} (${report.fallback})` : what };
    };
  // A backup that started at or after the slot serves it: a catch-up full backup also covers
  // the 6-hourly slot due at the same time, but an incremental never covers the weekly full.
  const coveredBySlot = (fullOnly: boolean) => async (slot: Date) => {
    const repository = await Repository.open(deps.store).catch(() => undefined);
    if (!repository) return undefined;
    const newer = (await listBackups(repository)).find(
      (b) => Date.parse(b.startTime) >= slot.getTime() && (!fullOnly || b.kind === 'full'),
    );
    return newer ? `backup ${newer.id} already covers this slot` : undefined;
  };
  add('full-backup', { run: backup(false), satisfied: coveredBySlot(true) });
  add('backup', { run: backup(true), satisfied: coveredBySlot(false) });
  add('logical-dump', {
    run: async ({ signal }) => {
      const ids: string[] = [];
      for (const database of await dumpableDatabases(deps.connection)) {
        const report = await takeDump({
          connection: deps.connection,
          database,
          store: deps.store,
          compression: deps.compression,
          logger: deps.logger,
          signal,
          ...(deps.keys ? { keys: deps.keys } : {}),
          ...observed(deps),
        });
        ids.push(`${database}: ${report.dump.id}`);
      }
      return { status: 'succeeded', detail: ids.join(', ') };
    },
  });
  jobs.push(...redisBackupJobs(deps));
  add('retention', {
    run: async ({ signal }) => {
      const report = await expire({
        store: deps.store,
        policy: plan.retention,
        logger: deps.logger,
        signal,
        ...observed(deps),
      });
      return {
        status: 'succeeded',
        detail: `${report.deleted.backups.length} backup(s) and ${report.deleted.walSegments} WAL segment(s) removed${report.deleted.leftovers ? `, ${report.deleted.leftovers} leftover(s) of interrupted commands` : ''}`,
      };
    },
  });
  add('verification', {
    run: async ({ signal }) => {
      // Alternate: the latest point, then a random point in the restorable window.
      const count = (await listVerifications(deps.store)).length;
      const target = count % 2 === 0 ? ({ kind: 'latest' } as const) : await randomPoint(deps.store);
      const report = await verifyRestore({
        store: deps.store,
        connection: deps.connection,
        target,
        checks: plan.checks,
        scratch: plan.verification,
        ...(deps.keys ? { keys: deps.keys } : {}),
        logger: deps.logger,
        signal,
        ...observed(deps),
      });
      const key = await recordVerification(deps.store, report);
      const failed = report.checks.filter((c) => c.status === 'failed').map((c) => c.name);
      return report.passed
        ? { status: 'succeeded', detail: `backup ${report.backupId} verified (${key})` }
        : {
            status: 'failed',
            detail: `backup ${report.backupId ?? '-'}: ${failed.join(', ')} failed (${key})`,
            error: { code: 'WARDEN_E_RESTORE_CHECK_FAILED', message: `checks failed: ${failed.join(', ')}` },
          };
    },
  });
  add('drill', {
    run: async ({ signal }) => {
      const report = await runDrill({
        store: deps.store,
        connection: deps.connection,
        objectives: plan.objectives,
        checks: plan.checks,
        scratch: plan.verification,
        cluster: plan.name,
        profile: plan.profile,
        ...(deps.keys ? { keys: deps.keys } : {}),
        ...(plan.drillMigration ? { migration: plan.drillMigration } : {}),
        logger: deps.logger,
        signal,
        ...observed(deps),
      });
      const key = await recordDrill(deps.store, report);
      const migrated = report.migration
        ? `, migration ${report.migration.program} ${report.migration.status}${report.migration.error ? ` ${report.migration.error.code}` : ''}`
        : '';
      const measured = `RTO ${describeDuration(report.measured.rtoMs)}, RPO ${report.measured.rpoMs === undefined ? '-' : describeDuration(report.measured.rpoMs)}${migrated}`;
      return report.passed
        ? { status: 'succeeded', detail: `${measured} (${key})` }
        : {
            status: 'failed',
            detail: `${measured}: ${report.failures.join('; ')} (${key})`,
            error: { code: 'WARDEN_E_DRILL_FAILED', message: report.failures.join('; ') },
          };
    },
  });
  return jobs;
}

/** The events options of a use case run by a job: the daemon's hub and the cluster as subject. */
function observed(deps: JobDeps): ObservedOptions {
  return {
    ...(deps.events ? { events: deps.events } : {}),
    ...(deps.eventSubject ? { eventSubject: deps.eventSubject } : {}),
  };
}

/** The on-demand job the daemon runs when a WAL gap was recorded (see `unresolvedWalGaps`). */
export const GAP_BACKUP_JOB = 'gap-backup';

/**
 * A full backup taken at once after a WAL gap (not at the next schedule): restores reach past
 * the gap only from a backup that started after it. Skipped when no gap is unresolved any more
 * (another daemon's or a manual full backup came first).
 */
export function buildGapBackupJob(deps: JobDeps): OnDemandJob {
  return {
    name: GAP_BACKUP_JOB,
    satisfied: async () => {
      const gaps = await unresolvedWalGaps(deps.store);
      return gaps.length === 0 ? 'no unresolved WAL gap: a full backup after it exists' : undefined;
    },
    run: async ({ signal }) => {
      const gaps = await unresolvedWalGaps(deps.store);
      const report = await takeBackup({
        connection: deps.connection,
        store: deps.store,
        slotName: deps.plan.slot,
        from: deps.plan.backupFrom,
        compression: deps.compression,
        ...(deps.keys ? { keys: deps.keys } : {}),
        logger: deps.logger,
        signal,
        ...observed(deps),
      });
      return {
        status: 'succeeded',
        detail: `full backup ${report.backup.id} after WAL gap(s) ${gaps.map((g) => `${g.from}..${g.to}`).join(', ')}`,
      };
    },
  };
}

/** The recorded WAL gaps no full backup has resolved yet. */
export async function unresolvedWalGaps(store: ObjectStore): Promise<WalGapState[]> {
  const repository = await Repository.open(store).catch(() => undefined);
  if (!repository) return [];
  const { gaps } = await listWalGaps(repository);
  if (gaps.length === 0) return [];
  return assessWalGaps(gaps, await listBackups(repository), await readWalInventory(repository)).filter(
    (g) => g.state === 'unresolved',
  );
}

/** Every database a logical dump can cover (templates and databases refusing connections aside). */
async function dumpableDatabases(connection: ConnectionConfig): Promise<string[]> {
  const client = await connect({ ...connection, applicationName: 'warden daemon' });
  try {
    const { rows } = await client.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname',
    );
    return rows.map((row) => row.datname);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function randomPoint(store: ObjectStore): Promise<{ kind: 'time'; time: Date }> {
  const repository = await Repository.open(store);
  const window = restorableWindow(
    await listBackups(repository),
    await readWalInventory(repository),
    repository.meta.walSegmentSize,
  );
  if (!window.earliest || !window.latest)
    throw new WardenError('WARDEN_E_NO_BACKUP', 'the repository has no restorable window yet');
  const from = Date.parse(window.earliest);
  const to = Date.parse(window.latest);
  return { kind: 'time', time: new Date(from + Math.random() * Math.max(0, to - from)) };
}
