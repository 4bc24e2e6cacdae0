import { describeDuration } from '../util/duration.ts';
import { longestCombinedGapMs, type Schedule } from '../scheduler/schedule.ts';
import type { ClusterPlan } from './daemon-config.ts';

/** What the WAL stream usually lags behind the server; below this an RPO is not credible. */
const STREAM_RPO_FLOOR_MS = 10_000;

/**
 * Objectives the configured schedule cannot meet, as warnings for startup: the daemon still runs
 * (a weaker protection is better than none), but the operator hears about it.
 */
export function objectiveWarnings(plan: ClusterPlan, now = new Date()): string[] {
  const warnings: string[] = [];
  const where = `cluster ${plan.name} (${plan.profile})`;
  const backups = [plan.schedules['full-backup'], plan.schedules.backup].filter(
    (s): s is Schedule => s !== null,
  );
  if (backups.length === 0)
    warnings.push(`${where}: no backup is scheduled; nothing can be restored after retention`);
  if (!plan.walStreaming) {
    const gap = backups.length ? longestCombinedGapMs(backups, now) : Infinity;
    if (gap > plan.objectives.rpoMs) {
      warnings.push(
        `${where}: RPO ${describeDuration(plan.objectives.rpoMs)} cannot be met: WAL streaming is off and backups run ${
          Number.isFinite(gap) ? `up to ${describeDuration(gap)} apart` : 'never'
        }`,
      );
    }
  } else if (plan.objectives.rpoMs < STREAM_RPO_FLOOR_MS) {
    warnings.push(
      `${where}: RPO ${describeDuration(plan.objectives.rpoMs)} is below what WAL streaming reliably achieves (~${describeDuration(STREAM_RPO_FLOOR_MS)}); use synchronous replication for that`,
    );
  }
  if (!plan.schedules.verification)
    warnings.push(`${where}: no verification is scheduled; backups are never proven restorable`);
  if (!plan.schedules.drill)
    warnings.push(
      `${where}: no DR drill is scheduled; RTO ${describeDuration(plan.objectives.rtoMs)} is never measured`,
    );
  return warnings;
}
