import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { BackupKind, WardenEvents } from '../events/warden-events.ts';
import type { ClusterSnapshot, LastBackupFacts } from './cluster-snapshot.ts';
import { EventFacts, type ClusterEventFacts } from './event-facts.ts';
import type { SnapshotCache } from './snapshot-cache.ts';
import type { CopyTargetStatus } from '../copy/copy-target-status.ts';

const KINDS: readonly BackupKind[] = ['full', 'incremental', 'dump'];
const BASE = ['cluster', 'repository'] as const;
const LINT_FAILING_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** The `warden_*` metrics (docs/metrics.md describes each; a test keeps the two in step). */
function defineMetrics(registry: Registry) {
  const gauge = <L extends string>(name: string, help: string, labels: readonly L[] = []) =>
    new Gauge<L | (typeof BASE)[number]>({
      name,
      help,
      labelNames: [...BASE, ...labels],
      registers: [registry],
    });
  return {
    up: gauge('warden_up', 'The daemon serves this cluster (1).'),
    backupLastSuccess: gauge(
      'warden_backup_last_success_timestamp_seconds',
      'When the newest successful backup of this kind finished.',
      ['kind'],
    ),
    backupLastDuration: gauge(
      'warden_backup_last_duration_seconds',
      'How long the newest successful backup of this kind took.',
      ['kind'],
    ),
    backupLastSize: gauge(
      'warden_backup_last_size_bytes',
      'Size of the newest successful backup of this kind: data read from the server, or stored in the repository.',
      ['kind', 'stage'],
    ),
    backupFailures: new Counter({
      name: 'warden_backup_failures_total',
      help: 'Backups of this kind that failed since the daemon started.',
      labelNames: [...BASE, 'kind'],
      registers: [registry],
    }),
    streamUp: gauge('warden_wal_stream_up', 'The WAL stream is connected and streaming (1) or not (0).'),
    lagBytes: gauge(
      'warden_wal_flush_lag_bytes',
      'WAL the server has written that is not yet durable in the repository.',
    ),
    lagSeconds: gauge(
      'warden_wal_flush_lag_seconds',
      'Since when the repository has not held everything the server had written (0 when caught up).',
    ),
    rpoExposure: gauge(
      'warden_rpo_exposure_seconds',
      'Committed data a loss of the server now would cost, in seconds (as `warden status` reports it).',
    ),
    windowStart: gauge(
      'warden_restorable_window_start_timestamp_seconds',
      'Earliest point of the newest contiguous restorable range.',
    ),
    windowEnd: gauge(
      'warden_restorable_window_end_timestamp_seconds',
      'Latest point of the newest contiguous restorable range.',
    ),
    windowGaps: gauge(
      'warden_restorable_window_gaps',
      'WAL gaps between restorable ranges inside the retention promise (the recovery window, else all).',
    ),
    recoveryWindow: gauge(
      'warden_retention_recovery_window_seconds',
      "The retention policy's promise: restorable to any point this far back.",
    ),
    verificationLastSuccess: gauge(
      'warden_verification_last_success_timestamp_seconds',
      'When the newest passed restore verification finished.',
    ),
    verificationPassed: gauge(
      'warden_verification_passed',
      'The newest restore verification passed (1) or failed (0).',
    ),
    drillLast: gauge('warden_drill_last_timestamp_seconds', 'When the newest DR drill finished.'),
    drillRto: gauge('warden_drill_rto_seconds', 'RTO the newest DR drill measured.'),
    drillRpo: gauge('warden_drill_rpo_seconds', 'RPO the newest DR drill measured.'),
    drillPassed: gauge('warden_drill_passed', 'The newest DR drill passed (1) or failed (0).'),
    drillMigrationPassed: gauge(
      'warden_drill_migration_passed',
      "The newest DR drill's migration step on the restored copy passed (1) or failed (0).",
    ),
    objectiveRto: gauge('warden_objective_rto_seconds', "The cluster's recovery time objective."),
    objectiveRpo: gauge('warden_objective_rpo_seconds', "The cluster's recovery point objective."),
    repositorySize: gauge(
      'warden_repository_size_bytes',
      'Bytes the repository holds: backups, dumps and archived WAL as stored.',
    ),
    repositoryReachable: gauge('warden_repository_reachable', 'The repository could be read (1) or not (0).'),
    slotRetained: gauge(
      'warden_slot_retained_wal_bytes',
      "WAL the server keeps for the repository's replication slot.",
    ),
    jobLastRun: gauge(
      'warden_job_last_run_timestamp_seconds',
      'When a run of this job last ended with this outcome.',
      ['job', 'outcome'],
    ),
    copyLag: gauge(
      'warden_copy_lag_seconds',
      'How far the copyTo target is behind: seconds since the start of its last successful pass.',
      ['target'],
    ),
    copyLastSuccess: gauge(
      'warden_copy_last_success_timestamp_seconds',
      'When the last successful pass to the copyTo target ended.',
      ['target'],
    ),
    copyFailedAttempts: gauge(
      'warden_copy_failed_attempts',
      'Consecutive failed passes to the copyTo target (0 when the last one succeeded).',
      ['target'],
    ),
    snapshotAge: gauge(
      'warden_metrics_snapshot_timestamp_seconds',
      'When the cached repository and server facts of this cluster were collected.',
    ),
  };
}

export interface WardenMetricsOptions {
  /** Every served cluster with its repository location (labels; never credentials). */
  clusters: ReadonlyArray<{ cluster: string; repository: string; walStreaming: boolean }>;
  snapshots: Pick<SnapshotCache, 'current'>;
  /** Each cluster's `copyTo` targets as the daemon's copiers see them now (no I/O). */
  copies?: (cluster: string) => readonly CopyTargetStatus[];
  /** The clock (tests). */
  now?: () => number;
}

/**
 * `GET /metrics`: the facts the events brought (immediate) merged with the cached snapshots
 * (repository and server facts, refreshed in the background), newest observation winning, plus
 * prom-client's default process metrics. A scrape does no I/O beyond writing the text.
 *
 * @example
 * const metrics = new WardenMetrics({ clusters, snapshots: cache });
 * metrics.subscribe(daemon.events);
 * response.end(await metrics.render());
 */
export class WardenMetrics {
  readonly registry = new Registry();
  private readonly metrics: ReturnType<typeof defineMetrics>;
  private readonly facts = new EventFacts();

  constructor(private readonly options: WardenMetricsOptions) {
    collectDefaultMetrics({ register: this.registry });
    // Gauges named like counters fail `promtool check metrics`; each is the sum of a per-type
    // gauge that stays (`nodejs_active_handles{type}` …).
    for (const name of LINT_FAILING_DEFAULTS) this.registry.removeSingleMetric(name);
    this.metrics = defineMetrics(this.registry);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  subscribe(events: WardenEvents): () => void {
    return this.facts.subscribe(events);
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  async render(): Promise<string> {
    this.update();
    return this.registry.metrics();
  }

  private update(): void {
    const m = this.metrics;
    for (const metric of Object.values(m)) metric.reset();
    const snapshots = new Map(this.options.snapshots.current().map((s) => [s.cluster, s]));
    const now = (this.options.now ?? Date.now)() / 1000;
    for (const served of this.options.clusters) {
      const base = { cluster: served.cluster, repository: served.repository };
      const snapshot = snapshots.get(served.cluster);
      const facts = this.facts.get(served.cluster);
      m.up.set(base, 1);
      for (const kind of KINDS) {
        m.backupFailures.inc({ ...base, kind }, facts?.backupFailures[kind] ?? 0);
        const last = newest(snapshot?.lastBackups[kind], facts?.lastBackups[kind]);
        if (!last) continue;
        m.backupLastSuccess.set({ ...base, kind }, last.at);
        m.backupLastDuration.set({ ...base, kind }, last.durationSeconds);
        m.backupLastSize.set({ ...base, kind, stage: 'data' }, last.dataBytes);
        m.backupLastSize.set({ ...base, kind, stage: 'stored' }, last.storedBytes);
      }
      if (served.walStreaming) this.setStream(base, snapshot, facts, now);
      if (snapshot) this.setSnapshotOnly(base, snapshot);
      this.setVerificationAndDrill(base, snapshot, facts);
      const reachable = newerOf(
        snapshot ? { at: snapshot.takenAt, value: snapshot.reachable } : undefined,
        facts?.reachability ? { at: facts.reachability.at, value: facts.reachability.reachable } : undefined,
      );
      if (reachable) m.repositoryReachable.set(base, reachable.value ? 1 : 0);
      const jobs = new Map<string, { job: string; outcome: string; at: number }>();
      for (const run of [...(snapshot?.jobs ?? []), ...(facts?.jobs.values() ?? [])]) {
        const key = `${run.job}\0${run.outcome}`;
        if ((jobs.get(key)?.at ?? -Infinity) < run.at) jobs.set(key, run);
      }
      for (const run of jobs.values())
        m.jobLastRun.set({ ...base, job: run.job, outcome: run.outcome }, run.at);
      for (const copy of this.options.copies?.(served.cluster) ?? []) {
        const labels = { ...base, target: copy.target };
        m.copyLag.set(labels, copy.lagSeconds);
        m.copyFailedAttempts.set(labels, copy.failedAttempts);
        if (copy.lastSuccessAt) m.copyLastSuccess.set(labels, Date.parse(copy.lastSuccessAt) / 1000);
      }
    }
  }

  private setStream(
    base: { cluster: string; repository: string },
    snapshot: ClusterSnapshot | undefined,
    facts: ClusterEventFacts | undefined,
    now: number,
  ): void {
    const m = this.metrics;
    const up = newerOf(
      snapshot?.stream ? { at: snapshot.takenAt, value: snapshot.stream.up } : undefined,
      facts?.stream ? { at: facts.stream.at, value: facts.stream.up } : undefined,
    );
    m.streamUp.set(base, up?.value ? 1 : 0);
    const lag = newerOf(
      snapshot?.stream?.lagBytes !== undefined
        ? {
            at: snapshot.takenAt,
            value: { bytes: snapshot.stream.lagBytes, caughtUpAt: snapshot.stream.caughtUpAt },
          }
        : undefined,
      facts?.flush?.lagBytes !== undefined
        ? { at: facts.flush.at, value: { bytes: facts.flush.lagBytes, caughtUpAt: facts.flush.caughtUpAt } }
        : undefined,
    );
    if (lag) {
      m.lagBytes.set(base, lag.value.bytes);
      const caughtUpAt = lag.value.caughtUpAt;
      if (lag.value.bytes === 0) m.lagSeconds.set(base, 0);
      else if (caughtUpAt !== undefined) m.lagSeconds.set(base, Math.max(0, now - caughtUpAt));
    }
  }

  private setSnapshotOnly(base: { cluster: string; repository: string }, snapshot: ClusterSnapshot): void {
    const m = this.metrics;
    m.snapshotAge.set(base, snapshot.takenAt);
    if (snapshot.rpoExposureSeconds !== undefined) m.rpoExposure.set(base, snapshot.rpoExposureSeconds);
    if (snapshot.window) {
      if (snapshot.window.start !== undefined) m.windowStart.set(base, snapshot.window.start);
      if (snapshot.window.end !== undefined) m.windowEnd.set(base, snapshot.window.end);
      m.windowGaps.set(base, snapshot.window.gaps);
    }
    if (snapshot.recoveryWindowSeconds !== undefined)
      m.recoveryWindow.set(base, snapshot.recoveryWindowSeconds);
    m.objectiveRto.set(base, snapshot.objectives.rtoSeconds);
    m.objectiveRpo.set(base, snapshot.objectives.rpoSeconds);
    if (snapshot.sizeBytes !== undefined) m.repositorySize.set(base, snapshot.sizeBytes);
    if (snapshot.slotRetainedBytes !== undefined) m.slotRetained.set(base, snapshot.slotRetainedBytes);
  }

  private setVerificationAndDrill(
    base: { cluster: string; repository: string },
    snapshot: ClusterSnapshot | undefined,
    facts: ClusterEventFacts | undefined,
  ): void {
    const m = this.metrics;
    const verification = newerOf(
      snapshot?.verification
        ? { at: snapshot.verification.at, value: snapshot.verification.passed }
        : undefined,
      facts?.verification ? { at: facts.verification.at, value: facts.verification.passed } : undefined,
    );
    if (verification) m.verificationPassed.set(base, verification.value ? 1 : 0);
    const success = Math.max(
      snapshot?.verification?.lastSuccessAt ?? -Infinity,
      facts?.verificationSuccessAt ?? -Infinity,
    );
    if (Number.isFinite(success)) m.verificationLastSuccess.set(base, success);
    const drill = newerOf(
      snapshot?.drill ? { at: snapshot.drill.at, value: snapshot.drill } : undefined,
      facts?.drill ? { at: facts.drill.at, value: facts.drill } : undefined,
    );
    if (drill) {
      m.drillLast.set(base, drill.at);
      m.drillPassed.set(base, drill.value.passed ? 1 : 0);
      if (drill.value.rtoSeconds !== undefined) m.drillRto.set(base, drill.value.rtoSeconds);
      if (drill.value.rpoSeconds !== undefined) m.drillRpo.set(base, drill.value.rpoSeconds);
      // Only a drill that ran a migration step says anything about one.
      if (drill.value.migrationPassed !== undefined)
        m.drillMigrationPassed.set(base, drill.value.migrationPassed ? 1 : 0);
      else m.drillMigrationPassed.remove(base);
    }
  }
}

/** The later of two observations (the snapshot's or an event's). */
function newerOf<T>(
  a: { at: number; value: T } | undefined,
  b: { at: number; value: T } | undefined,
): { at: number; value: T } | undefined {
  if (!a) return b;
  if (!b) return a;
  return b.at >= a.at ? b : a;
}

function newest(a: LastBackupFacts | undefined, b: LastBackupFacts | undefined): LastBackupFacts | undefined {
  if (!a) return b;
  if (!b) return a;
  return b.at >= a.at ? b : a;
}
