import type { BackupRecord, StoredObject } from '../repository/backup-catalog.ts';
import type { SegmentRecord } from '../repository/wal-archive.ts';
import { parseLsn, parseSegmentName } from '../wal/lsn.ts';

/**
 * Strict readers for Warden's JSON records. The records carry no checksum of their own, so
 * verify reads them as strictly as it can: valid UTF-8 (a damaged byte in ASCII JSON never is),
 * the expected shape, and agreement with the key they are stored under. Each throws an Error
 * saying what is wrong.
 */
export function strictJson(data: Buffer): unknown {
  return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
}

const SHA256 = /^[0-9a-f]{64}$/;

function check(condition: unknown, what: string): asserts condition {
  if (!condition) throw new Error(what);
}

function isTime(value: unknown): boolean {
  return typeof value === 'string' && !Number.isNaN(Date.parse(value));
}

function isLsn(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  try {
    parseLsn(value);
    return true;
  } catch {
    return false;
  }
}

function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function checkStoredObject(object: StoredObject | undefined, prefix: string, what: string): void {
  check(
    object && typeof object.key === 'string' && object.key.startsWith(prefix),
    `${what}: key outside ${prefix}`,
  );
  check(isCount(object.size) && isCount(object.rawSize), `${what}: bad size`);
  check(typeof object.sha256 === 'string' && SHA256.test(object.sha256), `${what}: bad sha256`);
}

/** `backups/<id>/backup.json`. */
export function readBackupRecord(data: Buffer, key: string, systemId: string | undefined): BackupRecord {
  const record = strictJson(data) as BackupRecord;
  const id = key.split('/')[1];
  check(record && record.format === 1, 'unknown format');
  check(record.id === id, `id "${String(record.id)}" differs from its directory "${id}"`);
  check(systemId === undefined || record.systemId === systemId, 'belongs to another cluster');
  check(Number.isInteger(record.timeline) && record.timeline >= 1, 'bad timeline');
  check(isLsn(record.startLsn) && isLsn(record.endLsn), 'bad start or end LSN');
  check(parseLsn(record.startLsn) <= parseLsn(record.endLsn), 'start LSN after end LSN');
  check(isTime(record.startTime) && isTime(record.endTime), 'bad start or end time');
  check(record.kind === 'full' || record.kind === 'incremental', `unknown kind "${String(record.kind)}"`);
  check(
    record.kind === 'full' ? record.parent === undefined : typeof record.parent === 'string',
    'an incremental backup names its parent, a full one none',
  );
  check(Array.isArray(record.archives) && record.archives.length > 0, 'no archives');
  const prefix = `backups/${id}/`;
  for (const archive of record.archives) checkStoredObject(archive, prefix, `archive ${archive?.archive}`);
  checkStoredObject(record.manifest, prefix, 'manifest');
  check(record.manifest.key === `${prefix}backup_manifest.zst`, 'manifest key');
  if (record.incrementalBasis !== undefined) {
    checkStoredObject(record.incrementalBasis, prefix, 'incremental basis');
    check(!record.incrementalBasis.encryption, 'the incremental basis is stored unencrypted');
  }
  return record;
}

/** `wal/<TLI>/<segment>.json`. */
export function readSegmentRecord(data: Buffer, key: string, segmentSize: number): SegmentRecord {
  const record = strictJson(data) as SegmentRecord;
  const file = key.slice(key.lastIndexOf('/') + 1, -'.json'.length);
  const parsed = parseSegmentName(file, segmentSize);
  check(parsed, `${file} is not a segment name`);
  check(record && record.format === 1, 'unknown format');
  check(record.segment === file, `names segment ${String(record.segment)}, stored as ${file}`);
  check(record.timeline === parsed.timeline, `timeline ${String(record.timeline)} differs from its name`);
  check(
    key.startsWith(`wal/${parsed.timeline.toString(16).toUpperCase().padStart(8, '0')}/`),
    'stored under another timeline',
  );
  check(
    isLsn(record.startLsn) && parseLsn(record.startLsn) === parsed.startLsn,
    'start LSN differs from its name',
  );
  check(
    record.container === undefined
      ? record.compression === 'zstd'
      : record.container === 'sealed-partial' &&
          record.compression === 'none' &&
          record.encryption !== undefined,
    'unknown compression or container',
  );
  check(
    isCount(record.size) && typeof record.sha256 === 'string' && SHA256.test(record.sha256),
    'bad size or sha256',
  );
  check(
    isCount(record.validBytes) && record.validBytes > 0 && record.validBytes <= segmentSize,
    'bad validBytes',
  );
  check(isCount(record.commits), 'bad commit count');
  for (const time of [record.firstCommitTime, record.lastCommitTime])
    check(time === undefined || isTime(time), 'bad commit time');
  check(record.lastCommitLsn === undefined || isLsn(record.lastCommitLsn), 'bad last commit LSN');
  return record;
}
