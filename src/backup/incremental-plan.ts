import { WardenError } from '../errors.ts';
import type { ServerFacts } from '../postgres/preflight.ts';
import { majorOfVersion } from '../postgres/server-binaries.ts';
import { listBackups, type BackupRecord } from '../repository/backup-catalog.ts';
import { completeChains } from '../repository/backup-chain.ts';
import type { Repository } from '../repository/repository.ts';
import { readIncrementalBasis } from './incremental-basis.ts';

/**
 * The oldest server release Warden takes incremental backups from (server_version_num). 17.0
 * is left out: incremental backup was new in it, and its first minor release carries fixes to
 * the WAL summarizer and incremental backups that a bank should not run without.
 */
export const DEFAULT_MIN_INCREMENTAL_VERSION = 170001;

export type IncrementalMode = 'require' | 'prefer';

export interface IncrementalBase {
  parent: BackupRecord;
  /** The parent's manifest (its incremental basis), for UPLOAD_MANIFEST. */
  manifest: Buffer;
}

/** Why no incremental backup can be taken (a full one can). */
export type IncrementalBlocker =
  'server-version' | 'summarize-wal-off' | 'no-parent' | 'manifest-unreadable' | 'server-refused';

/**
 * Picks the backup an incremental backup builds on: the newest committed backup of this cluster
 * on the server's current timeline and major version whose chain is complete. Returns the reason
 * instead when none can be taken; callers in `prefer` mode then take a full backup.
 */
export async function planIncremental(
  repository: Repository,
  facts: ServerFacts,
  current: { systemId: string; timeline: number },
  minVersion = DEFAULT_MIN_INCREMENTAL_VERSION,
): Promise<IncrementalBase | { blocker: IncrementalBlocker; message: string }> {
  if (facts.serverVersionNum < minVersion) {
    return {
      blocker: 'server-version',
      message: `incremental backups need PostgreSQL ${formatVersionNum(minVersion)} or newer; the server runs ${formatVersionNum(facts.serverVersionNum)}`,
    };
  }
  if (!facts.summarizeWal) {
    return {
      blocker: 'summarize-wal-off',
      message:
        'incremental backups need summarize_wal = on (ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf())',
    };
  }
  const major = Math.floor(facts.serverVersionNum / 10000);
  const candidates = completeChains(await listBackups(repository)).filter(
    (backup) =>
      backup.systemId === current.systemId &&
      backup.timeline === current.timeline &&
      majorOfVersion(backup.serverVersion) === major,
  );
  const parent = candidates.at(-1);
  if (!parent) {
    return {
      blocker: 'no-parent',
      message: `no earlier backup of this cluster on timeline ${current.timeline} (PostgreSQL ${major}) to build on`,
    };
  }
  const manifest = await readIncrementalBasis(repository, parent);
  if (!manifest) {
    return {
      blocker: 'manifest-unreadable',
      message: `backup ${parent.id} has no incremental basis and its encrypted backup_manifest needs an identity this process does not hold`,
    };
  }
  return { parent, manifest };
}

/** The error for `require` mode. */
export function incrementalUnavailable(blocker: IncrementalBlocker, message: string): WardenError {
  return new WardenError('WARDEN_E_INCREMENTAL_UNAVAILABLE', message, {
    hint:
      blocker === 'no-parent'
        ? 'Take a full backup first (`warden backup`); incrementals build on it.'
        : blocker === 'summarize-wal-off'
          ? 'Turn on summarize_wal, take a full backup, then incrementals can follow.'
          : blocker === 'manifest-unreadable'
            ? 'Take a full backup (it stores an incremental basis), or give this process an identity (--identity).'
            : 'Take full backups on this server; the WAL stream keeps RPO in seconds either way.',
    details: { reason: blocker },
  });
}

function formatVersionNum(num: number): string {
  return `${Math.floor(num / 10000)}.${num % 10000}`;
}
