import type { WalReceiverStatus } from '../backup/wal-receiver.ts';
import { toWardenError } from '../errors.ts';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { listBackups } from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { LEGACY_SLOT } from '../repository/repository-meta.ts';
import { lockHolder } from '../repository/repository-lock.ts';
import { readWalInventory } from '../repository/wal-archive.ts';
import { restorableWindow, type RestorableWindow } from '../restore/restorable-window.ts';
import { readAllJobStates } from '../scheduler/job-state.ts';
import type { JobStatus } from '../scheduler/scheduler.ts';
import { describeDuration } from '../scheduler/duration.ts';
import { listDrills } from '../verify/drill.ts';
import { listVerifications, type VerificationReport } from '../verify/restore-check.ts';
import { parseLsn } from '../wal/lsn.ts';
import type { ClusterPlan } from './daemon-config.ts';
import { JOB_NAMES } from './profiles.ts';

export interface ClusterStatus {
  name: string;
  profile: string;
  repository: { location: string; reachable: boolean; error?: { code: string; message: string } };
  objectives: { rto: string; rpo: string; rtoMs: number; rpoMs: number };
  walStream: {
    state: string;
    flushedLsn?: string;
    caughtUpAt?: string;
    /** Bytes the server has written that the repository does not have yet. */
    lagBytes?: number;
    holder?: string;
    lastError?: { code: string; message: string };
    /** The repository's replication slot and the server's view of it. */
    slot?: { name: string; active?: boolean; retainedBytes?: number; walStatus?: string };
    /** While the receiver reconnects: what it waits for. */
    waitingFor?: string;
  };
  /** Seconds of committed data not yet durable in the repository. */
  rpoExposureSeconds?: number;
  rpoExposureSource?: 'server' | 'stream-state';
  restorableWindow?: RestorableWindow;
  /** Newest backup of each kind (full, PostgreSQL 17 incremental) and the newest named one. */
  lastBackup: { full?: BackupSummary; incremental?: BackupSummary; named?: BackupSummary };
  lastVerification?: {
    backupId?: string;
    startedAt: string;
    passed: boolean;
    failed: string[];
    /** Why each failed check failed (e.g. `prepare`: WARDEN_E_INSUFFICIENT_SPACE). */
    errors: CheckError[];
  };
  lastDrill?: {
    startedAt: string;
    passed: boolean;
    rtoMs: number;
    rpoMs?: number;
    objectives: { rtoMs: number; rpoMs: number };
    failures: string[];
    errors: CheckError[];
  };
  jobs: JobStatus[];
  /** What needs a person: failed verification or drill, unreachable repository, stopped stream. */
  alerts: string[];
}

export interface CheckError {
  check: string;
  code: string;
  message: string;
}

interface BackupSummary {
  id: string;
  name?: string;
  endTime: string;
  durationMs: number;
}

export interface StatusInputs {
  plan: ClusterPlan;
  store: ObjectStore;
  connection?: ConnectionConfig;
  /** From a running daemon; without it the repository's records and the schedules are used. */
  live?: { receiver?: WalReceiverStatus & { standby?: string }; jobs?: JobStatus[] };
  now?: Date;
}

/**
 * One cluster's protection status. Works from the repository (and the server, when reachable)
 * alone, so `warden status` needs no running daemon; a daemon adds its live receiver and jobs.
 */
export async function collectClusterStatus(inputs: StatusInputs): Promise<ClusterStatus> {
  const { plan, store } = inputs;
  const now = inputs.now ?? new Date();
  const alerts: string[] = [];
  const status: ClusterStatus = {
    name: plan.name,
    profile: plan.profile,
    repository: { location: store.location, reachable: true },
    objectives: {
      rto: describeDuration(plan.objectives.rtoMs),
      rpo: describeDuration(plan.objectives.rpoMs),
      rtoMs: plan.objectives.rtoMs,
      rpoMs: plan.objectives.rpoMs,
    },
    walStream: { state: inputs.live?.receiver?.state ?? 'unknown' },
    lastBackup: {},
    jobs: inputs.live?.jobs ?? [],
    alerts,
  };
  const live = inputs.live?.receiver;
  if (live) {
    Object.assign(status.walStream, {
      ...(live.flushedLsn ? { flushedLsn: live.flushedLsn } : {}),
      ...(live.caughtUpAt ? { caughtUpAt: live.caughtUpAt } : {}),
      ...(live.lastError ? { lastError: live.lastError } : {}),
      ...(live.waitingFor ? { waitingFor: live.waitingFor } : {}),
      ...(live.standby ? { state: 'standby', holder: live.standby } : {}),
    });
  }
  let caughtUpAt: string | undefined = live?.caughtUpAt;
  let flushedLsn: string | undefined = live?.flushedLsn;
  let slotName = plan.slot;
  try {
    const repository = await Repository.open(store);
    // A repository from before slots were recorded streamed through `warden`.
    slotName ??= repository.meta.slot ?? LEGACY_SLOT;
    const backups = await listBackups(repository);
    const inventory = await readWalInventory(repository);
    status.restorableWindow = restorableWindow(backups, inventory, repository.meta.walSegmentSize);
    const summary = (b: (typeof backups)[number]): BackupSummary => ({
      id: b.id,
      ...(b.name ? { name: b.name } : {}),
      endTime: b.endTime,
      durationMs: b.durationMs,
    });
    const full = backups.filter((b) => b.kind === 'full').at(-1);
    const incremental = backups.filter((b) => b.kind === 'incremental').at(-1);
    const named = backups.filter((b) => b.name).at(-1);
    if (full) status.lastBackup.full = summary(full);
    if (incremental) status.lastBackup.incremental = summary(incremental);
    if (named) status.lastBackup.named = summary(named);
    const stream = inventory.streamState;
    caughtUpAt ??= stream?.caughtUpAt;
    flushedLsn ??= stream?.flushedLsn;
    if (!live) {
      const holder = await lockHolder(store, 'wal-stream');
      status.walStream.state = holder ? 'streaming' : 'not running';
      if (holder) status.walStream.holder = `pid ${holder.pid} on ${holder.host}`;
      if (stream)
        Object.assign(status.walStream, { flushedLsn: stream.flushedLsn, caughtUpAt: stream.caughtUpAt });
    }
    const verification = (await listVerifications(store)).at(-1);
    if (verification) {
      status.lastVerification = {
        ...(verification.backupId ? { backupId: verification.backupId } : {}),
        startedAt: verification.startedAt,
        passed: verification.passed,
        failed: verification.checks.filter((c) => c.status === 'failed').map((c) => c.name),
        errors: checkErrors(verification),
      };
      if (!verification.passed)
        alerts.push(
          `verification of ${verification.backupId ?? 'the latest backup'} at ${verification.startedAt} FAILED: ${describeFailed(verification)}`,
        );
    }
    const drill = (await listDrills(store)).at(-1);
    if (drill) {
      status.lastDrill = {
        startedAt: drill.startedAt,
        passed: drill.passed,
        rtoMs: drill.measured.rtoMs,
        ...(drill.measured.rpoMs !== undefined ? { rpoMs: drill.measured.rpoMs } : {}),
        objectives: drill.objectives,
        failures: drill.failures,
        errors: checkErrors(drill.verification),
      };
      if (!drill.passed) alerts.push(`DR drill at ${drill.startedAt} FAILED: ${drill.failures.join('; ')}`);
    }
    if (!inputs.live?.jobs) status.jobs = await jobsFromRepository(plan, store, now);
  } catch (error) {
    const wrapped = toWardenError(error);
    status.repository = {
      location: store.location,
      reachable: false,
      error: { code: wrapped.code, message: wrapped.message },
    };
    alerts.push(`repository ${store.location} unreachable: ${wrapped.message}`);
    if (!inputs.live?.jobs) status.jobs = jobsFromSchedules(plan, now);
  }
  const server = inputs.connection ? await serverPosition(inputs.connection, slotName) : undefined;
  if (server && slotName) {
    status.walStream.slot = {
      name: slotName,
      ...(server.slot ? server.slot : {}),
    };
    if (server.slot?.walStatus === 'lost')
      alerts.push(
        `slot ${slotName} was invalidated by the server (wal_status lost): the repository misses WAL for good; drop it and take a new full backup`,
      );
    else if (server.slot && !server.slot.active && (server.slot.retainedBytes ?? 0) > 0)
      alerts.push(
        `slot ${slotName} is inactive and keeps ${((server.slot.retainedBytes ?? 0) / 1048576).toFixed(1)} MiB of WAL on the server: start the WAL stream or drop the slot`,
      );
  }
  if (server && flushedLsn)
    status.walStream.lagBytes = Math.max(
      0,
      Number(parseLsn(server.currentLsn) - parseLsn(server.slotFlushLsn ?? flushedLsn)),
    );
  if (server?.slotFlushLsn && parseLsn(server.slotFlushLsn) >= parseLsn(server.currentLsn)) {
    status.rpoExposureSeconds = 0;
    status.rpoExposureSource = 'server';
  } else if (server?.flushLagSeconds !== undefined) {
    status.rpoExposureSeconds = server.flushLagSeconds;
    status.rpoExposureSource = 'server';
  } else if (caughtUpAt) {
    status.rpoExposureSeconds = Math.max(0, Math.round((now.getTime() - Date.parse(caughtUpAt)) / 1000));
    status.rpoExposureSource = 'stream-state';
  }
  if (plan.walStreaming && ['not running', 'stopped', 'failed'].includes(status.walStream.state))
    alerts.push(`WAL stream ${status.walStream.state}: RPO exposure grows until it runs`);
  if (status.rpoExposureSeconds !== undefined && status.rpoExposureSeconds * 1000 > plan.objectives.rpoMs)
    alerts.push(
      `RPO exposure ${describeDuration(status.rpoExposureSeconds * 1000)} exceeds the objective ${status.objectives.rpo}`,
    );
  for (const job of status.jobs) {
    if (job.lastRun?.status === 'failed' && !['verification', 'drill'].includes(job.name))
      alerts.push(
        `job ${job.name} failed at ${job.lastRun.finishedAt}: ${job.lastRun.error?.message ?? job.lastRun.detail ?? ''}`,
      );
  }
  return status;
}

function checkErrors(report: VerificationReport): CheckError[] {
  return report.checks.flatMap((c) =>
    c.status === 'failed' && c.error ? [{ check: c.name, code: c.error.code, message: c.error.message }] : [],
  );
}

/** `prepare (WARDEN_E_INSUFFICIENT_SPACE: /scratch has … free)`: the failed checks with their causes. */
function describeFailed(report: VerificationReport): string {
  return report.checks
    .filter((c) => c.status === 'failed')
    .map((c) => (c.error ? `${c.name} (${c.error.code}: ${c.error.message})` : c.name))
    .join(', ');
}

function jobsFromSchedules(plan: ClusterPlan, now: Date): JobStatus[] {
  return JOB_NAMES.flatMap((name) => {
    const schedule = plan.schedules[name];
    if (!schedule) return [];
    const next = schedule.next(now);
    return [
      {
        name,
        schedule: schedule.pattern,
        timezone: schedule.timezone,
        running: false,
        ...(next ? { nextRun: next.toISOString() } : {}),
      },
    ];
  });
}

async function jobsFromRepository(plan: ClusterPlan, store: ObjectStore, now: Date): Promise<JobStatus[]> {
  const states = new Map((await readAllJobStates(store)).map((state) => [state.job, state]));
  return jobsFromSchedules(plan, now).map((job) => {
    const state = states.get(job.name);
    return {
      ...job,
      ...(state?.lastRun ? { lastRun: state.lastRun } : {}),
      ...(state?.lastSuccess ? { lastSuccess: state.lastSuccess } : {}),
    };
  });
}

interface ServerPosition {
  currentLsn: string;
  slotFlushLsn?: string;
  flushLagSeconds?: number;
  slot?: { active: boolean; retainedBytes?: number; walStatus?: string };
}

/** The server's view of Warden's stream (pg_stat_replication of the slot's walsender), if reachable. */
async function serverPosition(
  connection: ConnectionConfig,
  slot: string | undefined,
): Promise<ServerPosition | undefined> {
  try {
    const client = await connect(
      { ...connection, applicationName: 'warden status' },
      { connectTimeoutMs: 5000 },
    );
    try {
      const { rows } = await client.query<{
        lsn: string;
        flush: string | null;
        lag: number | null;
        active: boolean | null;
        retained: string | null;
        wal_status: string | null;
      }>(
        `SELECT pg_current_wal_lsn()::text AS lsn, r.flush_lsn::text AS flush, extract(epoch FROM r.flush_lag)::float8 AS lag,
                s.active, (pg_current_wal_lsn() - s.restart_lsn)::text AS retained, s.wal_status
           FROM (SELECT 1) one
           LEFT JOIN pg_replication_slots s ON s.slot_name = $1
           LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid`,
        [slot ?? null],
      );
      const row = rows[0]!;
      return {
        currentLsn: row.lsn,
        ...(row.flush ? { slotFlushLsn: row.flush } : {}),
        ...(row.lag !== null ? { flushLagSeconds: Math.round(row.lag * 10) / 10 } : {}),
        ...(row.active !== null
          ? {
              slot: {
                active: row.active,
                ...(row.retained !== null ? { retainedBytes: Number(row.retained) } : {}),
                ...(row.wal_status ? { walStatus: row.wal_status } : {}),
              },
            }
          : {}),
      };
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch {
    return undefined;
  }
}
