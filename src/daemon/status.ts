import { collectTopology, slotSurvival } from '../postgres/cluster-topology.ts';
import { isClusterConnection } from '../postgres/connection-config.ts';
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
import { restorableWindow } from '../repository/restorable-window.ts';
import { readAllJobStates } from '../scheduler/job-state.ts';
import type { JobStatus } from '../scheduler/scheduler.ts';
import { describeDuration } from '../util/duration.ts';
import { listDrills } from '../verify/drill.ts';
import { listVerifications, type VerificationReport } from '../verify/restore-check.ts';
import { parseLsn } from '../wal/lsn.ts';
import type { ClusterPlan } from './daemon-config.ts';
import { JOB_NAMES } from './profiles.ts';
import { GAP_BACKUP_JOB } from './jobs.ts';
import { redisJobName } from './redis-backup-config.ts';
import { assessWalGaps, listWalGaps } from '../repository/wal-gap-incidents.ts';
import { chooseObjectives, readRecordedObjectives, type ObjectivesChoice } from './recorded-objectives.ts';
import { statusFindings } from './status-findings.ts';
import { protectionOf } from './protection.ts';
import type { BackupSummary, ClusterStatus, CheckError } from './cluster-status.ts';

export type { ClusterStatus, DaemonStatus, CheckError } from './cluster-status.ts';

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
    objectives: describeObjectives(chooseObjectives(plan, {})),
    server: { checked: false },
    walStream: { state: inputs.live?.receiver?.state ?? 'unknown' },
    lastBackup: {},
    walGaps: [],
    jobs: inputs.live?.jobs ?? [],
    alerts,
    findings: [],
    protection: 'protected',
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
    const recordedGaps = await listWalGaps(repository);
    status.walGaps = assessWalGaps(recordedGaps.gaps, backups, inventory).filter(
      (g) => g.state !== 'obsolete',
    );
    // Unresolved and unreadable records are findings (status-findings.ts: recordedWalGaps).
    if (recordedGaps.unreadable.length > 0) status.unreadableGaps = recordedGaps.unreadable;
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
    }
    const drill = (await listDrills(store)).at(-1);
    const recorded = await readRecordedObjectives(store);
    const chosen = chooseObjectives(plan, {
      ...(recorded ? { daemon: recorded } : {}),
      ...(drill ? { drill } : {}),
    });
    status.profile = chosen.profile;
    status.objectives = describeObjectives(chosen);
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
    }
    if (!inputs.live?.jobs) status.jobs = await jobsFromRepository(plan, store, now);
  } catch (error) {
    const wrapped = toWardenError(error);
    status.repository = {
      location: store.location,
      reachable: false,
      error: { code: wrapped.code, message: wrapped.message },
    };
    if (!inputs.live?.jobs) status.jobs = jobsFromSchedules(plan, now);
  }
  let server: ServerPosition | undefined;
  if (inputs.connection) {
    const target = `${inputs.connection.host}:${inputs.connection.port}`;
    const reached = await serverPosition(inputs.connection, slotName);
    if ('error' in reached) status.server = { checked: true, target, reachable: false, error: reached.error };
    else {
      status.server = { checked: true, target, reachable: true };
      server = reached;
    }
  }
  if (inputs.connection && isClusterConnection(inputs.connection)) {
    const topology = await collectTopology(inputs.connection, slotName ? { slot: slotName } : {});
    status.topology = topology;
    const primary = topology.members.find((m) => m.role === 'primary');
    if (primary && status.server.checked)
      status.server.target = `${primary.host}:${primary.port} (${primary.name})`;
    if (slotName) {
      const survival = slotSurvival(topology, slotName);
      if (!survival.ok) status.slotSurvival = survival.problems;
    }
  }
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
  for (const job of status.jobs) {
    if (job.lastRun?.status === 'failed' && !['verification', 'drill'].includes(job.name))
      alerts.push(
        `job ${job.name} failed at ${job.lastRun.finishedAt}: ${job.lastRun.error?.message ?? job.lastRun.detail ?? ''}`,
      );
  }
  status.findings = statusFindings({ status, plan, now });
  // Alerts: every finding, then what needs a person without making the probe fail.
  status.alerts = [...status.findings.map((f) => f.message), ...alerts];
  status.protection = protectionOf(status.findings, status.alerts.length);
  return status;
}

function describeObjectives(chosen: ObjectivesChoice): ClusterStatus['objectives'] {
  return {
    rto: describeDuration(chosen.rtoMs),
    rpo: describeDuration(chosen.rpoMs),
    rtoMs: chosen.rtoMs,
    rpoMs: chosen.rpoMs,
    origin: chosen.origin,
    source: chosen.source,
  };
}

function checkErrors(report: VerificationReport): CheckError[] {
  return report.checks.flatMap((c) =>
    c.status === 'failed' && c.error ? [{ check: c.name, code: c.error.code, message: c.error.message }] : [],
  );
}

function jobsFromSchedules(plan: ClusterPlan, now: Date): JobStatus[] {
  // Each configured Redis backup is a job of its own, named after the Redis.
  const redis = (plan.redisBackups ?? []).map((r) => [redisJobName(r.name), r.schedule] as const);
  const scheduled = [...JOB_NAMES.map((name) => [name, plan.schedules[name]] as const), ...redis];
  return scheduled.flatMap(([name, schedule]) => {
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
  // The full backup the daemon takes after a WAL gap has no schedule: listed once it ran.
  const gapBackup = states.get(GAP_BACKUP_JOB);
  const onDemand: JobStatus[] = gapBackup
    ? [{ name: GAP_BACKUP_JOB, schedule: 'on demand', timezone: '-', running: false }]
    : [];
  return [...jobsFromSchedules(plan, now), ...onDemand].map((job) => {
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
): Promise<ServerPosition | { error: { code: string; message: string; reason?: string } }> {
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
  } catch (error) {
    const wrapped = toWardenError(error, 'WARDEN_E_SERVER_ERROR');
    // The machine-readable cause where the error has one (`no-password` for WARDEN_E_AUTH_FAILED).
    const reason = wrapped.details.reason;
    return {
      error: {
        code: wrapped.code,
        message: wrapped.message,
        ...(typeof reason === 'string' ? { reason } : {}),
      },
    };
  }
}
