import type { CopyTargetStatus } from '../copy/copy-target-status.ts';
import type { ClusterTopology } from '../postgres/cluster-topology.ts';
import type { RestorableWindow } from '../repository/restorable-window.ts';
import type { UnreadableGap, WalGapState } from '../repository/wal-gap-incidents.ts';
import type { JobStatus } from '../scheduler/scheduler.ts';
import type { ObjectivesChoice } from './recorded-objectives.ts';
import type { StatusFinding } from './status-finding-codes.ts';
import type { Protection } from './protection.ts';

export interface ClusterStatus {
  name: string;
  profile: string;
  repository: { location: string; reachable: boolean; error?: { code: string; message: string } };
  objectives: {
    rto: string;
    rpo: string;
    rtoMs: number;
    rpoMs: number;
    /** `config`, `daemon` or `drill` (recorded in the repository), or `default` (nothing was). */
    origin: ObjectivesChoice['origin'];
    /** Where they came from, in words. */
    source: string;
  };
  /** The server as `status` reached it; `checked` false when no connection is configured. */
  server: {
    checked: boolean;
    target?: string;
    reachable?: boolean;
    /** `reason`: the error's machine-readable cause when it has one (e.g. `no-password`). */
    error?: { code: string; message: string; reason?: string };
  };
  walStream: {
    state: string;
    flushedLsn?: string;
    caughtUpAt?: string;
    /** Bytes the server has written that the repository does not have yet. */
    lagBytes?: number;
    holder?: string;
    lastError?: { code: string; message: string };
    /** The repository's replication slot and the server's view of it. */
    slot?: { name: string; active?: boolean; retainedBytes?: number; walStatus?: string };
    /** While the receiver reconnects: what it waits for. */
    waitingFor?: string;
  };
  /** A cluster connection (several hosts, Patroni): members, roles, timelines, lag, sync state. */
  topology?: ClusterTopology;
  /** What would make the repository's slot miss on a new primary (empty: nothing). */
  slotSurvival?: string[];
  /** Seconds of committed data not yet durable in the repository. */
  rpoExposureSeconds?: number;
  rpoExposureSource?: 'server' | 'stream-state';
  restorableWindow?: RestorableWindow;
  /** Newest backup of each kind (full, PostgreSQL 17 incremental) and the newest named one. */
  lastBackup: { full?: BackupSummary; incremental?: BackupSummary; named?: BackupSummary };
  lastVerification?: {
    backupId?: string;
    startedAt: string;
    passed: boolean;
    failed: string[];
    /** Why each failed check failed (e.g. `prepare`: WARDEN_E_INSUFFICIENT_SPACE). */
    errors: CheckError[];
  };
  lastDrill?: {
    startedAt: string;
    passed: boolean;
    rtoMs: number;
    rpoMs?: number;
    objectives: { rtoMs: number; rpoMs: number };
    failures: string[];
    errors: CheckError[];
  };
  /**
   * WAL gaps recorded in the repository (incidents/). An `unresolved` one is a `wal-gap`
   * finding until a full backup that started after it completed; a `resolved`
   * one stays listed until retention removed the WAL from before it. `unreadableGaps` are records
   * that failed their check (they fail the status too: a gap may hide behind them).
   */
  walGaps: WalGapState[];
  unreadableGaps?: UnreadableGap[];
  jobs: JobStatus[];
  /** The daemon's `copyTo` targets (docs/off-site-copies.md); absent outside the daemon. */
  copies?: CopyTargetStatus[];
  /** What needs a person: every finding's message, then inactive slots and failed jobs. */
  alerts: string[];
  /** Every unhealthy state found, most severe first (status-findings.ts); empty when healthy. */
  findings: StatusFinding[];
  /** The cluster at a glance, from the findings and alerts (protection.ts). */
  protection: Protection;
}

/** What a running daemon reports (`GET /api/status`): itself and each cluster. */
export interface DaemonStatus {
  daemon: { id?: string; startedAt: string; warnings: string[] };
  clusters: ClusterStatus[];
}

export interface CheckError {
  check: string;
  code: string;
  message: string;
}

export interface BackupSummary {
  id: string;
  name?: string;
  endTime: string;
  durationMs: number;
}
