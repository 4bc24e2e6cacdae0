import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { WardenError } from '../errors.ts';
import { sha256 } from '../pipeline/hashing.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository, type ClusterIdentity } from '../repository/repository.ts';
import {
  archiveSegment,
  historyKey,
  readHistory,
  readStoredRecord,
  storeHistory,
} from '../repository/wal-archive.ts';
import { readSegmentHeader } from '../wal/segment-header.ts';
import { parseHistoryFileName, parseTimelineHistory } from '../wal/timeline-history.ts';

export interface WalPushOptions {
  store: ObjectStore;
  /** The file PostgreSQL asks to archive (`%p`, relative to the data directory it runs in). */
  file: string;
  keys?: RepositoryKeys;
  signal?: AbortSignal;
}

export type WalPushResult =
  | { kind: 'segment'; name: string; outcome: 'archived' | 'already-archived' }
  | { kind: 'history'; name: string; outcome: 'archived' | 'already-archived' }
  /** A file Warden keeps no copy of (see `ignoredReason`); PostgreSQL may recycle it. */
  | { kind: 'ignored'; name: string; reason: string };

/** `<segment>.<offset>.backup`: written by pg_backup_stop on the primary at each base backup. */
const BACKUP_HISTORY = /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/;
/** `<segment>.partial`: the old timeline's last segment, archived by a promoted standby. */
const PARTIAL = /^[0-9A-F]{24}\.partial$/;

/**
 * `warden wal push %p` (archive_command): archives one file PostgreSQL finished, through the
 * same compress → encrypt → checksum → sign path as the WAL stream (`archiveSegment`), so both
 * may archive the same segment: an identical one already stored is success (PostgreSQL retries a
 * push whose answer it did not get), a different one is refused (WARDEN_E_WAL_PUSH_CONFLICT) and
 * nothing is overwritten. The segment's own header names the cluster (system identifier, segment
 * size, version): a first push creates the repository, a push from another cluster is refused
 * (WARDEN_E_REPO_CLUSTER_MISMATCH). Timeline history files are stored with their record.
 */
export async function walPush(options: WalPushOptions): Promise<WalPushResult> {
  const name = path.basename(options.file);
  if (BACKUP_HISTORY.test(name))
    return { kind: 'ignored', name, reason: 'backup history file (Warden records its backups itself)' };
  if (PARTIAL.test(name))
    return {
      kind: 'ignored',
      name,
      reason:
        "old timeline's last partial segment (its WAL up to the switch is in the new timeline's first segment)",
    };
  const timeline = parseHistoryFileName(name);
  if (timeline !== undefined) return pushHistory(options, name, timeline);
  const data = await readFile(options.file);
  const header = readSegmentHeader(data, name);
  const repository = await Repository.openFor(
    options.store,
    { systemId: header.systemId, walSegmentSize: header.segmentSize, serverVersion: header.serverVersion },
    options.keys,
  );
  if (repository.meta.walSegmentSize !== header.segmentSize)
    throw new WardenError(
      'WARDEN_E_WAL_FORMAT',
      `${name} is ${header.segmentSize} bytes, the repository's segments ${repository.meta.walSegmentSize}`,
      {
        details: { file: name },
      },
    );
  const timelineOfName = Number.parseInt(name.slice(0, 8), 16);
  const before = await readStoredRecord(repository, timelineOfName, name);
  await archiveSegment(repository, timelineOfName, name, data, data.length, {
    onDifferent: 'refuse',
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return { kind: 'segment', name, outcome: before ? 'already-archived' : 'archived' };
}

/**
 * A history file names no cluster. PostgreSQL archives it before any segment of its timeline
 * (and before older ready segments), so a promoted cluster's first push into a new repository
 * is one: the cluster is then read from a segment beside it in pg_wal. Same content: success;
 * other content: refused.
 */
async function pushHistory(options: WalPushOptions, name: string, timeline: number): Promise<WalPushResult> {
  const content = await readFile(options.file);
  parseTimelineHistory(content.toString('utf8')); // WARDEN_E_WAL_FORMAT on a file that is not one
  const repository = await Repository.openFor(
    options.store,
    await clusterBeside(options.file, name),
    options.keys,
  );
  if (await repository.store.stat(historyKey(timeline))) {
    const stored = await readHistory(repository, timeline);
    if (stored.equals(content)) return { kind: 'history', name, outcome: 'already-archived' };
    throw new WardenError(
      'WARDEN_E_WAL_PUSH_CONFLICT',
      `the repository already holds timeline history file ${name} with other content`,
      {
        hint: 'Another cluster (or a reused timeline) archived a history file of this name here; nothing was overwritten.',
        details: { file: name, storedSha256: sha256(stored), pushedSha256: sha256(content) },
      },
    );
  }
  await storeHistory(repository, timeline, content);
  return { kind: 'history', name, outcome: 'archived' };
}

/** The cluster a history file belongs to, from the header of a segment in the same directory. */
async function clusterBeside(file: string, name: string): Promise<ClusterIdentity> {
  const dir = path.dirname(file);
  const segments = (await readdir(dir))
    .filter((entry) => SEGMENT.test(entry))
    .sort()
    .reverse();
  for (const segment of segments) {
    try {
      const header = readSegmentHeader(await readFile(path.join(dir, segment)), segment);
      return {
        systemId: header.systemId,
        walSegmentSize: header.segmentSize,
        serverVersion: header.serverVersion,
      };
    } catch {
      // a recycled or half-written file: try the next
    }
  }
  throw new WardenError(
    'WARDEN_E_WAL_FORMAT',
    `no WAL segment beside ${name} tells which cluster it belongs to`,
    {
      hint: 'Run `warden wal push` from the data directory, as archive_command does (%p is pg_wal/<file>).',
      details: { file: name },
    },
  );
}

const SEGMENT = /^[0-9A-F]{24}$/;
