import type { FindingCode, StatusFinding } from './status-finding-codes.ts';

/**
 * A cluster at a glance. `failing`: restore points are missing, unusable or unproven, or no new
 * backup can be taken. `at-risk`: what exists restores, but new data is not protected as
 * promised (stream down, RPO exposure over the objective, a backup late) or something needs a
 * person (an inactive slot, a failed job). `protected`: nothing found.
 */
export type Protection = 'protected' | 'at-risk' | 'failing';

/** Every finding's level; a `Record` so a new finding code cannot be left out. */
export const FINDING_PROTECTION: Readonly<Record<FindingCode, Exclude<Protection, 'protected'>>> = {
  'repository-missing': 'failing',
  'repository-unreadable': 'failing',
  'repository-unreachable': 'failing',
  'no-backup': 'failing',
  'wal-gap': 'failing',
  'verification-failed': 'failing',
  'drill-failed': 'failing',
  'server-auth-failed': 'failing',
  'server-unreachable': 'failing',
  'stream-not-running': 'at-risk',
  'rpo-exceeded': 'at-risk',
  'backup-stale': 'at-risk',
  // The slot would not survive a failover: protected now, exposed to a gap at the next one.
  'slot-not-permanent': 'at-risk',
};

/** The worst level among the findings; alerts that are no finding make a cluster at risk. */
export function protectionOf(findings: readonly Pick<StatusFinding, 'code'>[], alerts: number): Protection {
  const levels = findings.map((f) => FINDING_PROTECTION[f.code]);
  if (levels.includes('failing')) return 'failing';
  if (levels.includes('at-risk') || alerts > findings.length) return 'at-risk';
  return 'protected';
}
