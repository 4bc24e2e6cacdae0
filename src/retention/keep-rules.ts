// The vocabulary of an expiry decision: why a backup is kept, and the rule under which it goes.
// Its own module because the planner (plan-expiry.ts, keep-policy.ts, explain-expiry.ts) and the
// GFS tiers (gfs.ts) all speak it.

export type KeepRule =
  | 'named'
  | 'newest-valid'
  | 'no-valid-backup'
  | 'gfs-daily'
  | 'gfs-weekly'
  | 'gfs-monthly'
  | 'max-age-full'
  | 'max-age-incremental'
  | 'keep-last'
  | 'recovery-window'
  | 'needed-by-incremental';

/** The rule under which a backup goes: the first configured rule that no longer holds it. */
export type ExpireRule =
  | 'not-restorable'
  | 'max-age-full'
  | 'max-age-incremental'
  | 'gfs'
  | 'keep-last'
  | 'recovery-window'
  | 'no-rule';

export interface KeepReason {
  rule: KeepRule;
  detail: string;
}
