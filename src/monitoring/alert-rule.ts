/** How loud an alert is: `critical` pages someone, `warning` opens a ticket. */
export type AlertSeverity = 'critical' | 'warning';

/**
 * One alert as Warden ships it, before the rule file's options are applied: the hold time is in
 * milliseconds so `--hold-scale` can shorten it, and the runbook is an anchor of docs/alerts.md.
 */
export interface AlertDefinition {
  alert: string;
  /** PromQL; metric names must be ones Warden or the named exporters expose (a test checks). */
  expr: string;
  /** Prometheus `for:`: how long the condition must hold before the alert fires (0: at once). */
  holdMs: number;
  severity: AlertSeverity;
  summary: string;
  /** May use Prometheus templating (`{{ $labels.cluster }}`, `{{ $value }}`). */
  description: string;
  /** The heading's anchor in docs/alerts.md (GitHub's slug of the alert name: lower case). */
  runbook: string;
}

/** A named group of alerts, one per source (PostgreSQL, Redis, host, pools, Warden). */
export interface AlertGroup {
  name: string;
  alerts: AlertDefinition[];
}

/** Thresholds that depend on the site, each a flag of `warden monitoring rules`. */
export interface RuleOptions {
  /** Multiplies every hold time (`for:`; 1 = as documented, 0.01 for demos and tests). */
  holdScale: number;
  /** No successful physical backup for longer than this fires WardenBackupMissing. */
  backupMaxAgeMs: number;
  /** WAL held back by Warden's replication slot beyond this fires WardenSlotRetainingWal. */
  slotRetainedMaxBytes: number;
  /** How long a failed backup keeps WardenBackupFailed firing after the failure (a look-back window, not a hold time). */
  failureMemoryMs: number;
  /** Where docs/alerts.md is published; each alert links `<base>#<anchor>`. */
  runbookBase: string;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/**
 * The defaults follow the daemon's default profile: backups at 02:00 (full on Sunday), 06, 12
 * and 18, so the longest regular gap is 8 h; an hour of margin gives 9 h. The retention promise
 * and the RPO objective are not options: the daemon exports its own (docs/metrics.md).
 */
export const DEFAULT_RULE_OPTIONS: Readonly<RuleOptions> = Object.freeze({
  holdScale: 1,
  backupMaxAgeMs: 9 * HOUR,
  slotRetainedMaxBytes: 10 * 1024 ** 3,
  failureMemoryMs: HOUR,
  runbookBase: 'docs/alerts.md',
});
