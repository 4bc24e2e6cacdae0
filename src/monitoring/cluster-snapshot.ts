import type { BackupKind } from '../events/warden-events.ts';

/** Times are Unix seconds; sizes bytes. */
export interface LastBackupFacts {
  at: number;
  durationSeconds: number;
  dataBytes: number;
  storedBytes: number;
}

/**
 * What the metrics know of one cluster from its repository and server, collected in the
 * background (see SnapshotCache) so a scrape never lists the store nor queries the database.
 * Every field is optional where the source may not say (an unreachable repository, no drill yet).
 */
export interface ClusterSnapshot {
  cluster: string;
  repository: string;
  /** When this snapshot was taken (Unix seconds). */
  takenAt: number;
  /** The daemon streams this cluster's WAL (else the stream metrics are not exported for it). */
  walStreaming: boolean;
  reachable: boolean;
  /** Bytes the repository holds: every backup's and dump's objects and the archived WAL. */
  sizeBytes?: number;
  /** The newest contiguous restorable range, and the gaps inside the retention promise. */
  window?: { start?: number; end?: number; gaps: number };
  /** The retention policy's recovery window, when one is configured. */
  recoveryWindowSeconds?: number;
  lastBackups: Partial<Record<BackupKind, LastBackupFacts>>;
  verification?: { at: number; passed: boolean; lastSuccessAt?: number };
  drill?: { at: number; passed: boolean; rtoSeconds: number; rpoSeconds?: number; migrationPassed?: boolean };
  objectives: { rtoSeconds: number; rpoSeconds: number };
  stream?: { up: boolean; lagBytes?: number; caughtUpAt?: number };
  rpoExposureSeconds?: number;
  slotRetainedBytes?: number;
  /** The last time each job ended with each outcome. */
  jobs: Array<{ job: string; outcome: 'succeeded' | 'failed' | 'skipped'; at: number }>;
}

/** Unix seconds of an ISO time. */
export function unixSeconds(iso: string): number {
  return Date.parse(iso) / 1000;
}
