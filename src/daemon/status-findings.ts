import { EXIT } from '../errors.ts';
import { describeDuration } from '../util/duration.ts';
import { describeGap } from '../repository/wal-gap-incidents.ts';
import { longestCombinedGapMs, type Schedule } from '../scheduler/schedule.ts';
import type { ClusterPlan } from './daemon-config.ts';
import type { ClusterStatus } from './cluster-status.ts';
import { FINDINGS, type FindingCode, type StatusFinding } from './status-finding-codes.ts';

export { FINDINGS, type FindingCode, type StatusFinding };

/** What a status check sees: the collected status, its plan, and the clock. */
export interface StatusCheckInputs {
  status: ClusterStatus;
  plan: ClusterPlan;
  now: Date;
}

/** One named check; returns the findings it makes (none when healthy). */
export type StatusCheck = (inputs: StatusCheckInputs) => Array<Omit<StatusFinding, 'exit'>>;

/** A backup may be this late past its slot before it counts as missing (its own run time). */
const BACKUP_GRACE_MS = 3_600_000;

/** The checks `warden status` runs on every cluster, in no particular order (FINDINGS ranks them). */
export const STATUS_CHECKS: Readonly<Record<string, StatusCheck>> = {
  repository: ({ status }) => {
    const error = status.repository.error;
    if (status.repository.reachable || !error) return [];
    const code: FindingCode =
      error.code === 'WARDEN_E_REPO_NOT_INITIALIZED'
        ? 'repository-missing'
        : /^WARDEN_E_(REPO_FORMAT|REPO_CORRUPT|UNSIGNED|SIGNATURE_\w+)$/.test(error.code)
          ? 'repository-unreadable'
          : 'repository-unreachable';
    return [
      {
        code,
        message: `repository ${status.repository.location} ${code === 'repository-missing' ? 'does not exist' : code === 'repository-unreadable' ? 'unreadable' : 'unreachable'}: ${error.message}`,
        hint:
          code === 'repository-missing'
            ? 'Check --repo / repository.path; a new repository is created by the first backup or `warden wal stream`.'
            : 'Check the storage (path, permissions, bucket, credentials) and run `warden verify`.',
        error,
      },
    ];
  },
  backups: ({ status }) =>
    status.repository.reachable && !status.lastBackup.full && !status.lastBackup.incremental
      ? [
          {
            code: 'no-backup',
            message: `repository ${status.repository.location} holds no backup: nothing can be restored`,
            hint: 'Take one with `warden backup` (or let the daemon run its schedule).',
          },
        ]
      : [],
  // A hole before the newest range's backups is history (restores before it still reach up to
  // it, and newer data is protected); one that ends the newest range leaves new WAL unrestorable.
  walGaps: ({ status }) => {
    const window = status.restorableWindow;
    const gaps = window?.gaps ?? [];
    if (gaps.length === 0 || (window?.ranges.length && !window.ranges.at(-1)!.gapAfter)) return [];
    return gaps.map((gap) => ({
      code: 'wal-gap' as const,
      message: `WAL gap on timeline ${gap.timeline} from ${gap.from} to ${gap.to} (first missing segment ${gap.firstMissingSegment}): points inside it cannot be restored`,
      hint: 'Take a new full backup so the newest range does not depend on the gap; `warden verify` lists what is missing.',
    }));
  },
  // A gap the receiver recorded (incidents/) stays failing until a full backup taken after it
  // completed; a record that fails its check may hide one.
  recordedWalGaps: ({ status }) => [
    ...status.walGaps
      .filter((gap) => gap.state === 'unresolved')
      .map((gap) => ({
        code: 'wal-gap' as const,
        message: `${describeGap(gap)}: no restore reaches past ${gap.from} until a full backup taken after ${gap.to} completed`,
        hint: 'Take a full backup now (`warden backup`; the daemon starts one by itself).',
      })),
    ...(status.unreadableGaps ?? []).map((u) => ({
      code: 'wal-gap' as const,
      message: `WAL gap record ${u.object} failed its check: ${u.message}`,
      hint: 'Run `warden verify`; a gap may hide behind the damaged record.',
    })),
  ],
  verification: ({ status }) => {
    const v = status.lastVerification;
    return v && !v.passed
      ? [
          {
            code: 'verification-failed',
            // `prepare (WARDEN_E_INSUFFICIENT_SPACE: /scratch has … free)`: each failed check with its cause.
            message: `verification of ${v.backupId ?? 'the latest backup'} at ${v.startedAt} FAILED: ${
              v.failed
                .map((name) => {
                  const error = v.errors.find((e) => e.check === name);
                  return error ? `${name} (${error.code}: ${error.message})` : name;
                })
                .join(', ') || 'see its report'
            }`,
            hint: 'Read the report under verifications/ in the repository, fix the cause and verify again.',
          },
        ]
      : [];
  },
  drill: ({ status }) => {
    const d = status.lastDrill;
    return d && !d.passed
      ? [
          {
            code: 'drill-failed',
            message: `DR drill at ${d.startedAt} FAILED: ${d.failures.join('; ')}`,
            hint: 'Read the report under drills/ in the repository; run `warden drill` again once fixed.',
          },
        ]
      : [];
  },
  server: ({ status }) => {
    const error = status.server?.error;
    if (!error) return [];
    const auth = error.code === 'WARDEN_E_AUTH_FAILED' || error.code === 'WARDEN_E_SECRET_UNAVAILABLE';
    return [
      {
        code: auth ? 'server-auth-failed' : 'server-unreachable',
        message: `server ${status.server?.target ?? ''}: ${error.message}`,
        hint: auth
          ? 'Check the user and password source (PGPASSWORD, .pgpass, --password-file, passwordFile).'
          : 'Check that the server runs and that host, port and TLS settings are right.',
        error,
      },
    ];
  },
  stream: ({ status, plan }) =>
    plan.walStreaming && ['not running', 'stopped', 'failed'].includes(status.walStream.state)
      ? [
          {
            code: 'stream-not-running',
            message: `WAL stream ${status.walStream.state}: RPO exposure grows until it runs`,
            hint: 'Start `warden serve` (or `warden wal stream`) for this repository.',
          },
        ]
      : [],
  slotSurvival: ({ status }) =>
    status.slotSurvival?.length
      ? [
          {
            code: 'slot-not-permanent',
            message: `the repository's slot would not survive a failover: ${status.slotSurvival.join('; ')}`,
            hint: "Add the slot to Patroni's permanent `slots:` (patronictl edit-config; docs/high-availability.md).",
          },
        ]
      : [],
  rpo: ({ status }) =>
    status.rpoExposureSeconds !== undefined && status.rpoExposureSeconds * 1000 > status.objectives.rpoMs
      ? [
          {
            code: 'rpo-exceeded',
            message: `RPO exposure ${describeDuration(status.rpoExposureSeconds * 1000)} exceeds the objective ${status.objectives.rpo}`,
            hint: 'Get the WAL stream running and caught up (see the stream and server lines).',
          },
        ]
      : [],
  backupAge: ({ status, plan, now }) => {
    const due = backupDue(plan, now);
    const newest = [status.lastBackup.full, status.lastBackup.incremental]
      .flatMap((b) => (b ? [b.endTime] : []))
      .sort()
      .at(-1);
    if (!due || !newest || Date.parse(newest) >= due.getTime()) return [];
    return [
      {
        code: 'backup-stale',
        message: `newest backup ended ${newest}, before the backup scheduled at ${due.toISOString()}`,
        hint: "Check the daemon's backup job (status `jobs:`); take one now with `warden backup`.",
      },
    ];
  },
};

/**
 * The newest scheduled backup slot that should be done by now: the latest slot of the backup
 * schedules at least a grace before now. The grace is an hour, or one interval of the
 * schedules when they run more often than hourly.
 */
export function backupDue(plan: ClusterPlan, now: Date): Date | undefined {
  const schedules = [plan.schedules['full-backup'], plan.schedules.backup].filter(
    (s): s is Schedule => s !== null,
  );
  if (schedules.length === 0) return undefined;
  const grace = Math.min(BACKUP_GRACE_MS, longestCombinedGapMs(schedules, now, 20));
  const before = new Date(now.getTime() - grace);
  return schedules
    .flatMap((s) => {
      const due = s.latestDue(before);
      return due ? [due] : [];
    })
    .sort((a, b) => a.getTime() - b.getTime())
    .at(-1);
}

/** Runs every check; findings most severe first. */
export function statusFindings(inputs: StatusCheckInputs): StatusFinding[] {
  const order = Object.keys(FINDINGS);
  return Object.values(STATUS_CHECKS)
    .flatMap((check) => check(inputs))
    .map((finding) => ({ ...finding, exit: FINDINGS[finding.code].exit }))
    .sort((a, b) => order.indexOf(a.code) - order.indexOf(b.code));
}

/** The exit status for findings of any number of clusters: the most severe finding's, else 0. */
export function statusExit(findings: readonly StatusFinding[]): number {
  const order = Object.keys(FINDINGS);
  const worst = [...findings].sort((a, b) => order.indexOf(a.code) - order.indexOf(b.code))[0];
  return worst ? worst.exit : EXIT.ok;
}
