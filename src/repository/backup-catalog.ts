import { WardenError } from '../errors.ts';
import type { Compression } from '../pipeline/compression.ts';
import type { ObjectEncryption } from '../pipeline/encryption/repository-keys.ts';
import type { RecordSignature } from '../pipeline/signing/record-signature.ts';
import { checkTrusted, signedForWrite } from './record-trust.ts';
import type { Repository } from './repository.ts';

/** One stored object of a backup, with what is needed to check it without the database. */
export interface StoredObject {
  key: string;
  /** Bytes as stored (after compression). */
  size: number;
  /** SHA-256 of the stored bytes. */
  sha256: string;
  /** Bytes before compression. */
  rawSize: number;
  /** Present when the stored bytes are an age file (encrypted after compression). */
  encryption?: ObjectEncryption;
}

export interface ArchiveObject extends StoredObject {
  /** Archive name from BASE_BACKUP: `base.tar` or `<spcoid>.tar`. */
  archive: string;
  /** How this object is compressed (server-compressed archives keep the server's format). */
  compression: Compression;
  /** Tablespace OID and original location; absent for the main data directory. */
  tablespace?: { oid: string; location: string };
}

/**
 * `backups/<id>/backup.json`: the commit marker of a backup. Written last, after every object
 * it lists is durable; a backup directory without it is an unfinished attempt and ignored.
 */
/** Where a backup was taken (`warden backup --from`, docs/standby-backups.md). */
export interface BackupOrigin {
  role: 'primary' | 'standby';
  /** Patroni's member name, or `host:port` of a member found in the connection's host list. */
  member?: string;
  host?: string;
  port?: number;
  /** Standby: bytes of WAL it had not replayed yet when it was chosen. */
  replayLagBytes?: number;
  /** `standby-or-primary` found no standby that qualified: why. */
  fallback?: string;
}

export interface BackupRecord {
  format: 1;
  id: string;
  /** Optional descriptive name (`pre-v1.13.0-upgrade`); named backups are kept until deleted. */
  name?: string;
  /**
   * `full`: every file. `incremental` (PostgreSQL 17+): relation files hold only the blocks
   * changed since `parent` (INCREMENTAL.* files); restore needs the whole chain down to a full.
   */
  kind: 'full' | 'incremental';
  /** The backup an incremental backup builds on (absent for full backups). */
  parent?: string;
  systemId: string;
  timeline: number;
  startLsn: string;
  endLsn: string;
  /** Server clock when the backup started / became consistent at `endLsn`. */
  startTime: string;
  endTime: string;
  serverVersion: string;
  compression: Compression;
  /** Where compression ran: here, or on the server (BASE_BACKUP COMPRESSION). */
  compressedOn: 'client' | 'server';
  archives: ArchiveObject[];
  manifest: StoredObject;
  /**
   * PostgreSQL 17+: the manifest without per-file checksums, stored unencrypted, so a host that
   * can only encrypt can still take an incremental backup on this one (see incremental-basis.ts).
   */
  incrementalBasis?: StoredObject;
  /** Recipients every object of this backup is encrypted to; absent when not encrypted. */
  encryption?: ObjectEncryption;
  durationMs: number;
  /** Where BASE_BACKUP ran: the primary, or which standby (`--from`; absent in older records). */
  takenFrom?: BackupOrigin;
  /** Ed25519 signature of the writer's signing key over the rest of the record (docs/security.md). */
  signature?: RecordSignature;
}

const BACKUPS = 'backups/';

export function backupRecordKey(id: string): string {
  return `${backupPrefix(id)}backup.json`;
}

/** Every stored object a backup record lists (archives, manifest, incremental basis). */
export function backupObjects(record: BackupRecord): StoredObject[] {
  return [...record.archives, record.manifest, ...(record.incrementalBasis ? [record.incrementalBasis] : [])];
}

export function backupPrefix(id: string): string {
  return `${BACKUPS}${id}/`;
}

export async function listBackups(repository: Repository): Promise<BackupRecord[]> {
  const keys = await repository.store.list(BACKUPS);
  const records: BackupRecord[] = [];
  for (const key of keys.filter((k) => k.endsWith('/backup.json'))) {
    const record = parseRecord(await repository.store.getBuffer(key), key);
    checkTrusted(repository, key, record);
    records.push(record);
  }
  return records.sort((a, b) => a.endTime.localeCompare(b.endTime));
}

export async function getBackup(repository: Repository, idOrName: string): Promise<BackupRecord> {
  const all = await listBackups(repository);
  const found =
    all.find((record) => record.id === idOrName) ?? all.find((record) => record.name === idOrName);
  if (!found) {
    throw new WardenError('WARDEN_E_BACKUP_NOT_FOUND', `no backup "${idOrName}" in ${repository.location}`, {
      hint: 'Run `warden backup list` to see the backups.',
      details: { id: idOrName, known: all.map((record) => record.id) },
    });
  }
  return found;
}

/** Writes the record (signed when the handle holds a signing key): the backup's commit. */
export async function commitBackup(repository: Repository, record: BackupRecord): Promise<void> {
  const key = backupRecordKey(record.id);
  await repository.store.putBuffer(
    key,
    Buffer.from(`${JSON.stringify(signedForWrite(repository, key, record), null, 2)}\n`),
  );
}

/** A new backup id: UTC start time and kind, like 20261122-143005F (full) or 20261122-180002I. */
export function newBackupId(
  now: Date,
  existing: ReadonlySet<string>,
  kind: BackupRecord['kind'] = 'full',
): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const letter = kind === 'full' ? 'F' : 'I';
  let id = `${stamp}${letter}`;
  for (let n = 2; existing.has(id); n += 1) id = `${stamp}${letter}${n}`;
  return id;
}

function parseRecord(data: Buffer, key: string): BackupRecord {
  try {
    const record = JSON.parse(data.toString('utf8')) as BackupRecord;
    if (record.format !== 1) throw new Error(`format ${String(record.format)}`);
    return record;
  } catch (cause) {
    throw new WardenError('WARDEN_E_REPO_FORMAT', `${key} cannot be read`, {
      details: { object: key },
      cause,
    });
  }
}
