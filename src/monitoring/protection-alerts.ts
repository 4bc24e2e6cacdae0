import type { AlertGroup, RuleOptions } from './alert-rule.ts';
import { prometheusDuration } from './prometheus-duration.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/**
 * Data protection, from Warden's own `/metrics` (docs/metrics.md). These answer "can we restore,
 * and to when?": they fire on a failed backup, verification or drill, on backups or WAL that stop
 * arriving, and on a repository or slot that puts the next backup at risk.
 */
export function protectionAlertGroup(options: RuleOptions): AlertGroup {
  // A counter only says "it failed N times", not when: the alert remembers a failure this long.
  // The second branch catches the first failure of a kind, whose series is new: increase()
  // needs two samples and would see none.
  const memory = prometheusDuration(options.failureMemoryMs);
  const failures = 'warden_backup_failures_total';
  return {
    name: 'warden.data-protection',
    alerts: [
      {
        alert: 'WardenBackupFailed',
        expr: `increase(${failures}[${memory}]) > 0 or (${failures} > 0 unless ${failures} offset ${memory})`,
        holdMs: 0,
        severity: 'critical',
        summary: 'A backup failed',
        description:
          'A {{ $labels.kind }} backup of cluster {{ $labels.cluster }} into {{ $labels.repository }} failed' +
          ` within the last ${memory}; see the daemon's log and \`warden status\`.`,
        runbook: 'wardenbackupfailed',
      },
      {
        alert: 'WardenBackupMissing',
        expr:
          'time() - max by (cluster, repository) (warden_backup_last_success_timestamp_seconds{kind=~"full|incremental"})' +
          ` > ${options.backupMaxAgeMs / 1000}`,
        holdMs: 0,
        severity: 'critical',
        summary: `No successful backup for longer than ${prometheusDuration(options.backupMaxAgeMs)}`,
        description:
          'The newest physical backup of cluster {{ $labels.cluster }} in {{ $labels.repository }} is' +
          ' {{ $value | humanizeDuration }} old.',
        runbook: 'wardenbackupmissing',
      },
      {
        alert: 'WardenNoBackup',
        // warden_up says the daemon serves the cluster; a cluster without any physical backup
        // has no success timestamp at all, which the age alert above cannot see.
        expr:
          'warden_up unless on (cluster, repository)' +
          ' warden_backup_last_success_timestamp_seconds{kind=~"full|incremental"}',
        holdMs: options.backupMaxAgeMs,
        severity: 'critical',
        summary: `No physical backup at all for ${prometheusDuration(options.backupMaxAgeMs * options.holdScale)}`,
        description:
          'The daemon has served cluster {{ $labels.cluster }} for that long and {{ $labels.repository }} holds no backup of it.',
        runbook: 'wardennobackup',
      },
      {
        alert: 'WardenWalStreamDown',
        expr: 'warden_wal_stream_up == 0',
        holdMs: 5 * MINUTE,
        severity: 'critical',
        summary: 'The WAL stream is down',
        description:
          'Warden does not receive WAL of cluster {{ $labels.cluster }}: every new transaction widens the loss a disaster would cause.',
        runbook: 'wardenwalstreamdown',
      },
      {
        alert: 'WardenRpoExposureAboveObjective',
        expr: 'warden_rpo_exposure_seconds > on (cluster) group_left () max by (cluster) (warden_objective_rpo_seconds)',
        holdMs: MINUTE,
        severity: 'critical',
        summary: 'More data at risk than the RPO objective allows',
        description:
          'A disaster now would lose the last {{ $value | humanizeDuration }} of cluster {{ $labels.cluster }}, beyond its RPO objective.',
        runbook: 'wardenrpoexposureaboveobjective',
      },
      {
        alert: 'WardenRestorableWindowShort',
        // The promise is the daemon's own (retention.recoveryWindow): no promise, no alert.
        expr:
          'warden_restorable_window_end_timestamp_seconds - warden_restorable_window_start_timestamp_seconds' +
          ' < on (cluster, repository) warden_retention_recovery_window_seconds',
        holdMs: HOUR,
        severity: 'warning',
        summary: 'The restorable window is shorter than retention promises',
        description:
          'Cluster {{ $labels.cluster }} can be restored to any point of the last {{ $value | humanizeDuration }} only.',
        runbook: 'wardenrestorablewindowshort',
      },
      {
        alert: 'WardenRestorableWindowGap',
        expr: 'warden_restorable_window_gaps > 0',
        holdMs: 0,
        severity: 'warning',
        summary: 'The restorable window has gaps',
        description:
          'Cluster {{ $labels.cluster }} has {{ $value }} stretch(es) of time inside the retention promise it cannot be restored to.',
        runbook: 'wardenrestorablewindowgap',
      },
      {
        alert: 'WardenVerificationFailed',
        expr: 'warden_verification_passed == 0',
        holdMs: 0,
        severity: 'critical',
        summary: 'A restore verification failed',
        description:
          'The last verification of cluster {{ $labels.cluster }} could not restore a backup and pass its checks.',
        runbook: 'wardenverificationfailed',
      },
      {
        alert: 'WardenDrillFailed',
        expr: 'warden_drill_passed == 0',
        holdMs: 0,
        severity: 'warning',
        summary: 'A disaster-recovery drill failed',
        description:
          'The last drill of cluster {{ $labels.cluster }} failed or missed its RTO/RPO objectives.',
        runbook: 'wardendrillfailed',
      },
      {
        alert: 'WardenSlotRetainingWal',
        expr: `warden_slot_retained_wal_bytes > ${options.slotRetainedMaxBytes}`,
        holdMs: 5 * MINUTE,
        severity: 'warning',
        summary: "Warden's replication slot holds back too much WAL",
        description:
          'The slot of cluster {{ $labels.cluster }} keeps {{ $value | humanize1024 }}B of WAL on the server: its disk fills while the stream lags.',
        runbook: 'wardenslotretainingwal',
      },
      {
        alert: 'WardenRepositoryUnreachable',
        expr: 'warden_repository_reachable == 0',
        holdMs: 2 * MINUTE,
        severity: 'critical',
        summary: 'The backup repository is unreachable',
        description:
          'Warden cannot reach repository {{ $labels.repository }}: no backup or WAL can be stored.',
        runbook: 'wardenrepositoryunreachable',
      },
      {
        alert: 'WardenJobFailed',
        // The newest run of the job failed: a failed run newer than the last success, or no
        // success yet. Resolves with the next successful run. Prometheus stores the metric's
        // `job` label as `exported_job` (the scrape target has a `job` of its own) unless the
        // scrape honours labels, so the description takes whichever is there.
        expr:
          'max without (outcome) (' +
          'warden_job_last_run_timestamp_seconds{outcome="failed"}' +
          ' > ignoring (outcome) warden_job_last_run_timestamp_seconds{outcome="succeeded"}' +
          ' or (warden_job_last_run_timestamp_seconds{outcome="failed"}' +
          ' unless ignoring (outcome) warden_job_last_run_timestamp_seconds{outcome="succeeded"}))',
        holdMs: 0,
        severity: 'warning',
        summary: 'A scheduled job failed its last run',
        description:
          'The {{ if $labels.exported_job }}{{ $labels.exported_job }}{{ else }}{{ $labels.job }}{{ end }} job of cluster' +
          ' {{ $labels.cluster }} failed its last run; see `warden status` for the error and the retry.',
        runbook: 'wardenjobfailed',
      },
    ],
  };
}
