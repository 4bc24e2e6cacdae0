import { EXIT } from '../errors.ts';

/**
 * Every unhealthy state `warden status` reports, most severe first: that order is the
 * precedence when several hold (the exit status is the first one's). First what makes existing
 * restore points absent or unusable, then what leaves new data unprotected.
 */
export const FINDINGS = {
  /** No repository at the path (or no warden-repo.json in it). */
  'repository-missing': { exit: EXIT.notFound },
  /** The repository's metadata or records cannot be read as Warden's (format, corruption, signature). */
  'repository-unreadable': { exit: EXIT.integrity },
  /** The storage did not answer (I/O error, S3 unreachable, permissions). */
  'repository-unreachable': { exit: EXIT.unavailable },
  /** The repository holds no backup: nothing can be restored. */
  'no-backup': { exit: EXIT.notFound },
  /** A hole in the archived WAL: the points inside it can never be restored. */
  'wal-gap': { exit: EXIT.integrity },
  /** The last restore verification failed: the backups are not proven to restore. */
  'verification-failed': { exit: EXIT.checkFailed },
  /** The last DR drill failed (restore failed, or RTO/RPO over the objectives). */
  'drill-failed': { exit: EXIT.checkFailed },
  /** The server refused Warden's credentials: no backup or WAL can be taken. */
  'server-auth-failed': { exit: EXIT.server },
  /** The server could not be reached (network, TLS, server down). */
  'server-unreachable': { exit: EXIT.server },
  /** WAL streaming is configured but no receiver runs for the repository. */
  'stream-not-running': { exit: EXIT.checkFailed },
  /** In a cluster, the repository's slot would not survive a failover (not permanent in Patroni, or missing on a member). */
  'slot-not-permanent': { exit: EXIT.checkFailed },
  /** Committed data not yet durable in the repository exceeds the RPO objective. */
  'rpo-exceeded': { exit: EXIT.checkFailed },
  /** The newest backup is older than the backup schedules allow (a scheduled backup is missing). */
  'backup-stale': { exit: EXIT.checkFailed },
} as const;

export type FindingCode = keyof typeof FINDINGS;

export interface StatusFinding {
  code: FindingCode;
  /** The exit status this finding alone gives (see FINDINGS). */
  exit: number;
  message: string;
  hint?: string;
  /** The error behind it (connection and repository findings). */
  error?: { code: string; message: string };
}
