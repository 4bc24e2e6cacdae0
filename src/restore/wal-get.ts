import { rename, rm, writeFile } from 'node:fs/promises';
import { WardenError } from '../errors.ts';
import { sha256 } from '../pipeline/hashing.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { checkTrusted } from '../repository/record-trust.ts';
import { Repository } from '../repository/repository.ts';
import { tempSuffix } from '../repository/temp-name.ts';
import {
  historyKey,
  readHistory,
  readSegment,
  readStoredRecord,
  type SegmentRecord,
} from '../repository/wal-archive.ts';
import { parseSegmentName } from '../wal/lsn.ts';
import { parseHistoryFileName } from '../wal/timeline-history.ts';

export interface WalGetOptions {
  store: ObjectStore;
  /** `%f`: the file PostgreSQL asks for. */
  fileName: string;
  /** `%p`: where it wants it (relative to the data directory it runs the command in). */
  destination: string;
  /** Identities to decrypt with, and the trusted signing keys every record must carry. */
  keys?: RepositoryKeys;
}

export type WalGetResult = { found: false } | { found: true; kind: 'history' | 'segment' };

/** Segments the background prefetcher keeps ready ahead of recovery (`--prefetch`). */
export const DEFAULT_PREFETCH = 8;
const SEGMENT_NAME = /^[0-9A-F]{24}$/;

/**
 * `warden wal get %f %p` (restore_command) when the fast path (bin/wal-get-fast.js) did not
 * serve it from the prefetcher's spool: writes the segment or timeline history file PostgreSQL
 * asks for, read from the repository and verified as a restore reads it (record signature
 * under a trust set, stored checksum, age authentication, the raw segment's own SHA-256 when
 * recorded), to `%p` atomically (a temp file renamed into place). `found: false` for a file the
 * repository does not hold — PostgreSQL asks for files past the end of the archive and for
 * timelines that do not exist, so that is the normal end of a recovery.
 */
export async function walGet(options: WalGetOptions): Promise<WalGetResult> {
  const name = options.fileName;
  const timeline = parseHistoryFileName(name);
  // Only names PostgreSQL asks for reach the store (never a path).
  if (timeline === undefined && !SEGMENT_NAME.test(name)) return { found: false };
  const repository = await Repository.open(options.store, options.keys);
  if (timeline !== undefined) {
    if (!(await repository.store.stat(historyKey(timeline)))) return { found: false };
    await writeAtomically(options.destination, await readHistory(repository, timeline));
    return { found: true, kind: 'history' };
  }
  const parsed = parseSegmentName(name, repository.meta.walSegmentSize);
  if (!parsed) return { found: false };
  const data = await fetchSegment(repository, parsed.timeline, name);
  if (!data) return { found: false };
  await writeAtomically(options.destination, data);
  return { found: true, kind: 'segment' };
}

/** A segment read and verified, or undefined when the repository has no record of it. */
export async function fetchSegment(
  repository: Repository,
  timeline: number,
  name: string,
): Promise<Buffer | undefined> {
  const record = await readStoredRecord(repository, timeline, name);
  if (!record) return undefined;
  const key = `wal/${name.slice(0, 8)}/${name}.json`;
  checkTrusted(repository, key, record);
  if (record.segment !== name || record.timeline !== timeline)
    throw new WardenError('WARDEN_E_REPO_FORMAT', `${key} describes another segment`, {
      details: { object: key },
    });
  const raw = await readSegment(repository, record);
  checkRaw(repository, record, raw, key);
  return raw;
}

function checkRaw(repository: Repository, record: SegmentRecord, raw: Buffer, key: string): void {
  const wrongSize = raw.length !== repository.meta.walSegmentSize;
  if (wrongSize || (record.walSha256 !== undefined && sha256(raw) !== record.walSha256))
    throw new WardenError('WARDEN_E_REPO_CORRUPT', `WAL segment ${record.segment} does not match ${key}`, {
      hint: 'The repository was damaged; recovery through this segment is impossible from this copy.',
      details: { object: key },
    });
}

async function writeAtomically(destination: string, data: Buffer): Promise<void> {
  const temp = `${destination}${tempSuffix()}`;
  try {
    await writeFile(temp, data, { flag: 'wx', mode: 0o600 });
    await rename(temp, destination);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
