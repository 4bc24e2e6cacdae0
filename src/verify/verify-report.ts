import type { ModeAudit } from '../repository/fs/fs-access.ts';
import type { Leftovers } from '../retention/leftovers.ts';
import type { WalGapState } from '../repository/wal-gap-incidents.ts';
import type { RestorableWindow, WalGap } from '../repository/restorable-window.ts';
import type { StepReport } from '../util/step-recorder.ts';

/**
 * What kind of damage a problem is:
 * - `missing`: an object a record lists (or a history file a timeline needs) is absent;
 * - `corrupt`: size, SHA-256, decompression (or decryption) of a stored object fails;
 * - `manifest-mismatch`: a file inside a backup differs from PostgreSQL's backup_manifest;
 * - `bad-record`: a JSON record (backup.json, segment .json, dump.json, ...) cannot be read,
 *   or contradicts its own name or the repository;
 * - `wal-gap`: WAL a backup or the restorable window needs is not (verifiably) in the repository;
 * - `plaintext`: data or WAL stored in the clear where it must be encrypted: an object whose record
 *   says "age file" but whose bytes are not one, or a partial segment that is not sealed in an
 *   encrypted repository (`details.problem` says which).
 * - `signature`: a record is unsigned, signed by a key not trusted here, or changed after it was
 *   signed (checked when verify is given a trust set, as the CLI always does); restores refuse it.
 */
export type VerifyProblemKind =
  'missing' | 'corrupt' | 'manifest-mismatch' | 'bad-record' | 'wal-gap' | 'plaintext' | 'signature';

export interface VerifyProblem {
  kind: VerifyProblemKind;
  /** The repository key of the damaged (or first missing) object. */
  object: string;
  /** What is wrong with it. */
  message: string;
  /** What it breaks: "backup X unrestorable", "PITR impossible between A and B", ... */
  breaks: string;
  /** Backups that the problem makes unrestorable or limits. */
  backups?: string[];
  details?: Record<string, unknown>;
}

export interface BackupVerdict {
  id: string;
  name?: string;
  /**
   * Every object intact, matching the manifest, and the backup anchors a range of the
   * restorable window (its own WAL present, on the newest timeline's history): exactly the
   * backups `restore --backup` accepts.
   */
  restorable: boolean;
  /** WAL continuous from the backup's start to this LSN (the end of the archive when no gap). */
  walContinuousTo?: string;
  /**
   * The latest point a restore from this backup reaches: the end of its range, and the WAL gap
   * that ends it when it is not the newest one.
   */
  restorableTo?: { time: string; lsn: string; gapAfter?: WalGap };
}

export interface VerifyReport {
  repository: string;
  ok: boolean;
  /** `WARDEN_E_REPO_VERIFY_PROBLEMS` when problems were found. */
  code?: 'WARDEN_E_REPO_VERIFY_PROBLEMS';
  checked: {
    objects: number;
    bytes: number;
    backups: number;
    manifestFiles: number;
    walSegments: number;
    dumps: number;
    /** Redis backups (records), each shard also checked with redis-check-rdb. */
    redisBackups?: number;
  };
  backups: BackupVerdict[];
  /** The restorable window over the WAL that verified and the intact backups (the verdicts' source). */
  window?: RestorableWindow;
  /** Newest timeline and the end of its archived WAL (what continuity was checked up to). */
  walEnd?: { timeline: number; lsn: string };
  problems: VerifyProblem[];
  /**
   * A directory repository's entries whose modes let in more users than its policy (owner only,
   * or owner and `repository.group`): a warning with a fix, not a problem (`ok` is unaffected).
   */
  modes?: ModeAudit;
  /**
   * What interrupted commands left that no record points to (uncommitted backup objects, WAL
   * data without its record, empty directories): a finding, not a problem (`ok` is unaffected);
   * the next `warden expire` removes them.
   */
  leftovers: Leftovers;
  /**
   * WAL gaps the receiver recorded (incidents/): a finding, not a problem (`ok` is unaffected;
   * the continuity check reports the missing WAL itself). `unresolved` until a full backup that
   * started after the gap completed.
   */
  walGaps: WalGapState[];
  steps: StepReport[];
  durationMs: number;
}
