/**
 * Warden's own alert conditions: what `warden serve` tells webhooks about and what the
 * dashboard lists as active alerts. One active condition per key (cluster + condition), so a
 * condition that holds for hours is one alert, announced once when it fires and once when it
 * resolves.
 */

/** Weakest first; a webhook's `minSeverity` drops the conditions below it. */
export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/**
 * Every condition, with its severity and what makes it fire and resolve. Event conditions come
 * from the event seam (a later success resolves them); status conditions from the status the
 * daemon computes, evaluated on a timer (they resolve when the status no longer shows them).
 */
export const CONDITIONS = {
  /** A full or incremental backup failed (scheduled, gap backup or by hand); the next success resolves it. */
  'backup-failed': { severity: 'critical', source: 'event', title: 'backup failed' },
  /** A logical dump failed; the next dump that succeeds resolves it. */
  'dump-failed': { severity: 'warning', source: 'event', title: 'logical dump failed' },
  /** A restore verification failed: the backups are not proven to restore. */
  'verification-failed': { severity: 'critical', source: 'event', title: 'verification failed' },
  /** A DR drill failed (restore failed, or RTO/RPO above the objectives). */
  'drill-failed': { severity: 'warning', source: 'event', title: 'DR drill failed' },
  /** Another scheduled job failed (retention); keyed per job. */
  'job-failed': { severity: 'warning', source: 'event', title: 'job failed' },
  /** A `copyTo` target could not be brought up to date (keyed per target); catching up resolves it. */
  'copy-failed': { severity: 'warning', source: 'event', title: 'off-site copy failing' },
  /** The WAL stream has not been streaming for longer than `streamDownAfter`. */
  'stream-down': { severity: 'critical', source: 'status', title: 'WAL stream down' },
  /** Committed data not yet durable in the repository exceeds the RPO objective. */
  'rpo-exceeded': { severity: 'critical', source: 'status', title: 'RPO exposure above objective' },
  /** The repository (directory or bucket) did not answer. */
  'repository-unreachable': { severity: 'critical', source: 'status', title: 'repository unreachable' },
  /** The replication slot keeps more WAL on the server than `slotRetentionBytes`. */
  'slot-retention-high': { severity: 'warning', source: 'status', title: 'slot retains too much WAL' },
} as const satisfies Record<string, { severity: Severity; source: 'event' | 'status'; title: string }>;

export type ConditionCode = keyof typeof CONDITIONS;
export const CONDITION_CODES = Object.keys(CONDITIONS) as ConditionCode[];

/** What raises a condition: the facts of this occurrence. */
export interface ConditionInput {
  cluster: string;
  condition: ConditionCode;
  /** Narrows the key where one cluster may have several (the job of `job-failed`). */
  subject?: string;
  /** One line a person reads first (no secret: messages come from WardenError, scrubbed). */
  summary: string;
  repository?: string;
  error?: { code: string; message: string };
  at: string;
}

/** An active (firing) condition, as `/api/alerts` lists it and the notifications carry it. */
export interface ActiveCondition {
  /** Stable: `<cluster>/<condition>` or `<cluster>/<condition>/<subject>`. */
  key: string;
  cluster: string;
  condition: ConditionCode;
  subject?: string;
  severity: Severity;
  title: string;
  summary: string;
  repository?: string;
  error?: { code: string; message: string };
  /** When it started firing. */
  since: string;
  /** The last time it was seen to hold (its summary may have changed since). */
  updatedAt: string;
}

export function conditionKey(input: Pick<ConditionInput, 'cluster' | 'condition' | 'subject'>): string {
  return [input.cluster, input.condition, ...(input.subject ? [input.subject] : [])].join('/');
}

export function severityAtLeast(severity: Severity, minimum: Severity): boolean {
  return SEVERITIES.indexOf(severity) >= SEVERITIES.indexOf(minimum);
}

/** Most severe first, then the oldest: the order the dashboard and `/api/alerts` show. */
export function byUrgency(a: ActiveCondition, b: ActiveCondition): number {
  return (
    SEVERITIES.indexOf(b.severity) - SEVERITIES.indexOf(a.severity) ||
    a.since.localeCompare(b.since) ||
    a.key.localeCompare(b.key)
  );
}

export function activeCondition(input: ConditionInput): ActiveCondition {
  const spec = CONDITIONS[input.condition];
  return {
    key: conditionKey(input),
    cluster: input.cluster,
    condition: input.condition,
    ...(input.subject ? { subject: input.subject } : {}),
    severity: spec.severity,
    title: spec.title,
    summary: input.summary,
    ...(input.repository ? { repository: input.repository } : {}),
    ...(input.error ? { error: input.error } : {}),
    since: input.at,
    updatedAt: input.at,
  };
}
