/** What `warden status`, /api/status and the metrics show of one `copyTo` target. */
export interface CopyTargetStatus {
  target: string;
  location: string;
  /** `starting` until the first pass ends; `failing` while passes fail (with backoff). */
  state: 'starting' | 'caught-up' | 'failing';
  /**
   * Seconds since the start of the last pass that succeeded: everything the source had
   * committed before then is in the copy. Before the first success, counted from the copier's
   * start (an initial copy of a large repository shows it growing until it completes).
   */
  lagSeconds: number;
  /** Start of the last successful pass (the point the copy is complete up to). */
  caughtUpAt?: string;
  /** End of the last successful pass. */
  lastSuccessAt?: string;
  /** Consecutive failed passes. */
  failedAttempts: number;
  lastError?: { code: string; message: string; at: string };
  nextAttemptAt?: string;
  /** Totals copied since the daemon started. */
  copied: { backups: number; segments: number; dumps: number; bytes: number };
  lastTransition?: { at: string; moved: number; skipped: number };
}

/** Seconds between two instants, never negative. */
export function lagSecondsBetween(from: Date, now: Date): number {
  return Math.max(0, (now.getTime() - from.getTime()) / 1000);
}
