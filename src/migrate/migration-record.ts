import type { AuditActor } from '../audit/audit-record.ts';
import { checkTrusted, signedForWrite } from '../repository/record-trust.ts';
import type { Repository } from '../repository/repository.ts';
import type { ProtectedPoint } from './protect-point.ts';

/** `migrations/<id>.json`: one guarded migration, as `warden migrate` ran it (signed). */
export interface MigrationRecord {
  format: 1;
  id: string;
  actor: AuditActor;
  /** The program run (its file name) and a SHA-256 of the whole command line: arguments may hold secrets. */
  program: string;
  argvSha256: string;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  waitedForLockMs: number;
  protectedBy: ProtectedPoint;
  /** The command's exit status; null when a signal ended it (`signal` names it). */
  exitCode: number | null;
  signal?: string;
  outcome: 'succeeded' | 'failed';
  /** The restore command that brings back the state from before the migration, into a new instance. */
  rollback: string;
}

export function migrationRecordKey(id: string): string {
  return `migrations/${id}.json`;
}

/** Writes the record in one atomic put, signed when the handle holds a signing key. */
export async function recordMigration(repository: Repository, record: MigrationRecord): Promise<void> {
  const key = migrationRecordKey(record.id);
  await repository.store.putBuffer(
    key,
    Buffer.from(`${JSON.stringify(signedForWrite(repository, key, record), null, 2)}\n`),
  );
}

/** The guarded migrations recorded in the repository, newest first (unreadable records are skipped and counted). */
export async function listMigrations(
  repository: Repository,
): Promise<{ records: MigrationRecord[]; unreadable: number }> {
  const records: MigrationRecord[] = [];
  let unreadable = 0;
  for (const key of await repository.store.list('migrations/')) {
    if (!/^migrations\/[0-9TZ]+-[0-9a-f]{4}\.json$/.test(key)) continue;
    try {
      const record = JSON.parse((await repository.store.getBuffer(key)).toString('utf8')) as MigrationRecord;
      checkTrusted(repository, key, record);
      if (record.format !== 1 || migrationRecordKey(record.id) !== key)
        throw new Error('not a migration record');
      records.push(record);
    } catch {
      unreadable += 1;
    }
  }
  return { records: records.sort((a, b) => (a.id < b.id ? 1 : -1)), unreadable };
}
