import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { WardenError } from '../errors.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { silentLogger } from '../logger.ts';
import type { Compression } from '../pipeline/compression.ts';
import type { ArchiveObject, BackupRecord, StoredObject } from '../repository/backup-catalog.ts';
import { backupChain } from '../repository/backup-chain.ts';
import { DUMP_RECORD_FILE, parseDumpRecord } from '../repository/dump-catalog.ts';
import { FsObjectStore } from '../repository/fs/fs-object-store.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { META_KEY, parseRepositoryMeta, type RepositoryMeta } from '../repository/repository-meta.ts';
import {
  readSegment,
  segmentDataKey,
  STREAM_STATE_KEY,
  type PartialSegment,
  type SegmentRecord,
  type StreamState,
  type WalInventory,
} from '../repository/wal-archive.ts';
import { restorableWindow } from '../restore/restorable-window.ts';
import { findLeftovers, leftoverCount } from '../retention/leftovers.ts';
import { readVerified } from '../restore/verified-reader.ts';
import { StepRecorder } from '../util/report.ts';
import { parseSegmentName } from '../wal/lsn.ts';
import {
  parseHistoryFileName,
  parseTimelineHistory,
  type TimelineHistoryEntry,
} from '../wal/timeline-history.ts';
import { checkArchiveAgainstManifest, parseBackupManifest, type BackupManifest } from './backup-manifest.ts';
import { readBackupRecord, readSegmentRecord, strictJson } from './record-checks.ts';
import type { BackupVerdict, VerifyProblem, VerifyReport } from './verify-report.ts';
import { checkWalContinuity } from './wal-continuity.ts';
import { checkPartial, notAgeProblem, repositoryIsEncrypted } from './encryption-checks.ts';
import { signatureProblem } from './signature-checks.ts';
import { historyRecordKey, type HistoryRecord } from '../repository/wal-archive.ts';
import { sha256 } from '../pipeline/hashing.ts';

export type { VerifyProblem, VerifyReport } from './verify-report.ts';

export interface VerifyOptions {
  store: ObjectStore;
  logger?: Logger;
  signal?: AbortSignal;
  /** Segments read and checked at once (default 4). */
  concurrency?: number;
  /**
   * Identities for encrypted repositories (without them encrypted objects are reported), and
   * the trust set: with one, every record must be signed by a trusted key (`signature` problems).
   */
  keys?: RepositoryKeys;
}

const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;

/**
 * Checks a whole repository without touching any database: every stored object (size,
 * SHA-256 of the stored bytes, decompression — and decryption, through the same readers a
 * restore uses), every backup against its record and against PostgreSQL's backup_manifest
 * (size and CRC-32C of each file inside the tar archives), and WAL continuity from each
 * backup's start to the end of the archive. Never throws for damage it finds: each problem is
 * in the report with the object and what it breaks. Throws only when the store itself fails.
 *
 * @example
 * const report = await verifyRepository({ store: new FsObjectStore('/var/backups/warden') });
 * if (!report.ok) for (const p of report.problems) console.log(p.object, p.breaks);
 */
export async function verifyRepository(options: VerifyOptions): Promise<VerifyReport> {
  const started = performance.now();
  const logger = options.logger ?? silentLogger;
  const store = options.store;
  const steps = new StepRecorder();
  const problems: VerifyProblem[] = [];
  const checked = { objects: 0, bytes: 0, backups: 0, manifestFiles: 0, walSegments: 0, dumps: 0 };
  const abortCheck = () => {
    if (options.signal?.aborted) throw new WardenError('WARDEN_E_ABORTED', 'verify cancelled');
  };

  const trust = options.keys?.trust;
  const meta = await steps.run('repository metadata', () => readMeta(store, problems));
  checked.objects += 1;
  const systemId = meta?.systemId ?? '';
  const signed = (record: unknown, object: string, breaks: string, backups?: string[]): boolean => {
    const problem = signatureProblem(trust, record, { object, systemId }, breaks, backups);
    if (problem) problems.push(problem);
    return problem === undefined;
  };
  if (meta) signed(meta, META_KEY, 'restores, drills and copies refuse this repository');
  const repository = new Repository(store, meta ?? fallbackMeta(), options.keys);
  const segmentSize = repository.meta.walSegmentSize;

  const backups = await steps.run(
    'backups',
    async () => {
      const good: BackupRecord[] = [];
      for (const record of await readBackupRecords(store, meta?.systemId, problems)) {
        abortCheck();
        checked.backups += 1;
        checked.objects += 1;
        signed(
          record,
          `backups/${record.id}/backup.json`,
          `backup ${record.id} unrestorable (restore refuses its record)`,
          [record.id],
        );
        const damaged = await verifyBackup(store, record, problems, checked, options.keys);
        good.push(record);
        if (damaged) logger.info({ backup: record.id }, 'backup damaged');
      }
      return good;
    },
    (b) => `${b.length} backup(s)`,
  );

  checkChains(backups, problems);

  const encrypted = await repositoryIsEncrypted(store, backups);
  const wal = await steps.run(
    'WAL segments',
    () => verifyWal(repository, problems, checked, options.concurrency ?? 4, abortCheck, encrypted, signed),
    () => `${checked.walSegments} segment(s)`,
  );

  await steps.run(
    'logical dumps',
    () => verifyDumps(store, problems, checked, options.keys, signed),
    () => `${checked.dumps} dump(s)`,
  );

  // Not damage (no record points to them), so not problems: named so the next `expire` is known
  // to help.
  const leftovers = await steps.run(
    'leftovers',
    () => findLeftovers(store),
    (found) => `${leftoverCount(found)} found`,
  );

  const continuity = await steps.run('WAL continuity', async () =>
    checkWalContinuity({
      backups,
      good: wal.good,
      recorded: wal.recorded,
      histories: wal.histories,
      historyPresent: wal.historyPresent,
      ...(wal.good.streamState ? { streamState: wal.good.streamState } : {}),
      segmentSize,
    }),
  );
  for (const problem of problems) {
    const breaks = continuity.breaksBySegment.get(problem.object);
    if (problem.object.startsWith('wal/') && problem.kind !== 'wal-gap' && problem.kind !== 'signature')
      problem.breaks = breaks ?? 'nothing a retained backup needs (WAL outside every backup’s path)';
  }
  problems.push(...continuity.problems);

  // Not damage, so not a problem: reported beside them, with the command that fixes it.
  const modes =
    store instanceof FsObjectStore
      ? await steps.run(
          'repository modes',
          () => store.auditModes(),
          (audit) => `${audit.checked} entries, ${audit.looseCount} looser than ${audit.policy}`,
        )
      : undefined;

  const damagedBackups = new Set(problems.flatMap((p) => (p.kind === 'wal-gap' ? [] : (p.backups ?? []))));
  // A damaged full (or incremental) backup takes every incremental built on it down with it.
  const byId = new Map(backups.map((b) => [b.id, b]));
  for (const backup of backups) {
    if (backup.kind !== 'incremental' || damagedBackups.has(backup.id)) continue;
    for (let link = byId.get(backup.parent ?? ''); link; link = byId.get(link.parent ?? '')) {
      if (damagedBackups.has(link.id)) {
        damagedBackups.add(backup.id);
        break;
      }
      if (link.kind !== 'incremental') break;
    }
  }
  // The same model restore reads: a backup is restorable when it is intact and anchors a range
  // of the window over the WAL that verified, and it restores to that range's end.
  const window = restorableWindow(
    backups.filter((b) => !damagedBackups.has(b.id)),
    wal.good,
    segmentSize,
  );
  const verdicts: BackupVerdict[] = backups.map((backup) => {
    const range = window.ranges.find((r) => r.backups.includes(backup.id));
    const continuousTo = range?.latestLsn ?? continuity.continuousTo.get(backup.id);
    return {
      id: backup.id,
      ...(backup.name ? { name: backup.name } : {}),
      restorable: range !== undefined,
      ...(continuousTo ? { walContinuousTo: continuousTo } : {}),
      ...(range
        ? {
            restorableTo: {
              time: range.latest,
              lsn: range.latestLsn,
              ...(range.gapAfter ? { gapAfter: range.gapAfter } : {}),
            },
          }
        : {}),
    };
  });
  const report: VerifyReport = {
    repository: store.location,
    ok: problems.length === 0,
    ...(problems.length ? { code: 'WARDEN_E_VERIFY_FAILED' as const } : {}),
    checked,
    backups: verdicts,
    window,
    ...(continuity.walEnd ? { walEnd: continuity.walEnd } : {}),
    problems,
    ...(modes ? { modes } : {}),
    leftovers,
    steps: steps.steps,
    durationMs: Math.round(performance.now() - started),
  };
  logger.info({ problems: problems.length, objects: checked.objects }, 'verify finished');
  return report;
}

/** An incremental backup whose parent (or an older link) is gone cannot be restored. */
function checkChains(backups: readonly BackupRecord[], problems: VerifyProblem[]): void {
  for (const backup of backups) {
    if (backup.kind !== 'incremental') continue;
    try {
      backupChain(backup, backups);
    } catch (error) {
      const missing = (error as WardenError).details?.missing;
      problems.push({
        kind: 'missing',
        object: `backups/${String(missing)}/backup.json`,
        message: (error as Error).message,
        breaks: `backup ${backup.id} unrestorable`,
        backups: [backup.id],
      });
    }
  }
}

function fallbackMeta(): RepositoryMeta {
  return {
    format: 1,
    systemId: '',
    walSegmentSize: DEFAULT_SEGMENT_SIZE,
    serverVersion: '',
    createdAt: '',
    createdBy: '',
  };
}

async function readMeta(store: ObjectStore, problems: VerifyProblem[]): Promise<RepositoryMeta | undefined> {
  if (!(await store.stat(META_KEY))) {
    throw new WardenError('WARDEN_E_REPO_NOT_INITIALIZED', `${store.location} is not a Warden repository`, {
      details: { repository: store.location },
    });
  }
  const data = await store.getBuffer(META_KEY);
  try {
    strictJson(data);
    const meta = parseRepositoryMeta(data, store.location);
    if (!parseSegmentName('000000010000000000000001', meta.walSegmentSize))
      throw new Error('bad walSegmentSize');
    return meta;
  } catch (error) {
    problems.push({
      kind: 'bad-record',
      object: META_KEY,
      message: `${META_KEY} cannot be read: ${(error as Error).message}`,
      breaks: 'the repository cannot be opened for backups or restores (cluster identity unknown)',
    });
    return undefined;
  }
}

async function readBackupRecords(
  store: ObjectStore,
  systemId: string | undefined,
  problems: VerifyProblem[],
): Promise<BackupRecord[]> {
  const records: BackupRecord[] = [];
  for (const key of (await store.list('backups/')).filter((k) => /^backups\/[^/]+\/backup\.json$/.test(k))) {
    const id = key.split('/')[1]!;
    try {
      records.push(readBackupRecord(await store.getBuffer(key), key, systemId || undefined));
    } catch (error) {
      problems.push({
        kind: 'bad-record',
        object: key,
        message: `backup record cannot be read: ${(error as Error).message}`,
        breaks: `backup ${id} unrestorable (its record, which lists its objects and checksums, is damaged)`,
        backups: [id],
      });
    }
  }
  return records.sort((a, b) => a.endTime.localeCompare(b.endTime));
}

/** Counts bytes passing through (the decompressed size of an archive). */
class ByteCounter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

function compressionOfKey(key: string): Compression {
  return key.endsWith('.zst') ? 'zstd' : key.endsWith('.gz') ? 'gzip' : 'none';
}

/**
 * One backup's objects and every file in its archives against its backup_manifest (size and
 * CRC-32C), the check pg_verifybackup makes, done on the stored archives. Returns the problems.
 */
export async function verifyBackupAgainstManifest(
  store: ObjectStore,
  record: BackupRecord,
  keys?: RepositoryKeys,
): Promise<{ problems: VerifyProblem[]; manifestFiles: number }> {
  const problems: VerifyProblem[] = [];
  const checked = { objects: 0, bytes: 0, backups: 0, manifestFiles: 0, walSegments: 0, dumps: 0 };
  await verifyBackup(store, record, problems, checked, keys);
  return { problems, manifestFiles: checked.manifestFiles };
}

/** Checks one backup's objects and its files against the manifest; true when anything is wrong. */
async function verifyBackup(
  store: ObjectStore,
  record: BackupRecord,
  problems: VerifyProblem[],
  checked: VerifyReport['checked'],
  keys: RepositoryKeys | undefined,
): Promise<boolean> {
  const before = problems.length;
  const unrestorable = `backup ${record.id} unrestorable`;
  const add = (problem: Omit<VerifyProblem, 'backups' | 'breaks'> & { breaks?: string }) =>
    problems.push({ breaks: unrestorable, backups: [record.id], ...problem });

  let manifest: BackupManifest | undefined;
  const manifestData = await readObject(store, record.manifest, 'zstd', add, checked, true, keys);
  if (manifestData) {
    try {
      manifest = parseBackupManifest(manifestData);
      checked.manifestFiles += manifest.files.size;
      const range = manifest.walRanges[0];
      if (range && (range.startLsn !== record.startLsn || range.endLsn !== record.endLsn)) {
        add({
          kind: 'manifest-mismatch',
          object: record.manifest.key,
          message: `manifest WAL range ${range.startLsn}..${range.endLsn} differs from the record's ${record.startLsn}..${record.endLsn}`,
        });
      }
    } catch (error) {
      add({
        kind: 'corrupt',
        object: record.manifest.key,
        message: `backup_manifest cannot be parsed: ${(error as Error).message}`,
      });
    }
  }

  if (record.incrementalBasis) {
    // Damage here costs the next incremental (a full backup is taken instead), not this backup.
    const addBasisProblem: AddProblem = (problem) =>
      problems.push({ breaks: `incremental backups on ${record.id}`, backups: [], ...problem });
    const basis = await readObject(
      store,
      record.incrementalBasis,
      'zstd',
      addBasisProblem,
      checked,
      true,
      keys,
    );
    if (basis) {
      try {
        parseBackupManifest(basis);
      } catch (error) {
        addBasisProblem({
          kind: 'corrupt',
          object: record.incrementalBasis.key,
          message: `incremental basis cannot be parsed: ${(error as Error).message}`,
        });
      }
    }
  }

  const seen = new Set<string>();
  for (const archive of record.archives) {
    await verifyArchive(store, record, archive, manifest, seen, add, checked, keys);
  }
  if (manifest) {
    const missing = [...manifest.files.keys()].filter((p) => !seen.has(p));
    if (missing.length) {
      add({
        kind: 'manifest-mismatch',
        object: record.archives[0]!.key,
        message: `${missing.length} file(s) listed in backup_manifest are in no archive: ${missing.slice(0, 5).join(', ')}`,
        details: { files: missing },
      });
    }
  }
  return problems.length > before;
}

type AddProblem = (problem: Omit<VerifyProblem, 'backups' | 'breaks'> & { breaks?: string }) => void;

async function verifyArchive(
  store: ObjectStore,
  record: BackupRecord,
  archive: ArchiveObject,
  manifest: BackupManifest | undefined,
  seen: Set<string>,
  add: AddProblem,
  checked: VerifyReport['checked'],
  keys: RepositoryKeys | undefined,
): Promise<void> {
  checked.objects += 1;
  if (!(await store.stat(archive.key))) {
    add({ kind: 'missing', object: archive.key, message: `archive ${archive.archive} is missing` });
    return;
  }
  const plaintext = archive.encryption ? await notAgeProblem(store, archive.key) : undefined;
  if (plaintext) {
    add(plaintext);
    return;
  }
  const reader = readVerified(store, archive, compressionOfKey(archive.key), keys);
  const counter = new ByteCounter();
  const prefix = archive.tablespace ? `pg_tblspc/${archive.tablespace.oid}/` : '';
  try {
    const scratch = new Set<string>();
    const mismatches = manifest
      ? await checkArchiveAgainstManifest(reader.stream, manifest, prefix, scratch, counter)
      : await drain(reader.stream, counter);
    reader.check();
    checked.bytes += archive.size;
    for (const path of scratch) seen.add(path);
    if (record.compressedOn === 'client' && counter.bytes !== archive.rawSize) {
      add({
        kind: 'corrupt',
        object: archive.key,
        message: `decompresses to ${counter.bytes} bytes, the record says ${archive.rawSize}`,
      });
    }
    for (const mismatch of mismatches.slice(0, 20)) {
      add({
        kind: 'manifest-mismatch',
        object: archive.key,
        message:
          mismatch.reason === 'not-in-manifest'
            ? `${mismatch.path} is not listed in backup_manifest`
            : `${mismatch.path}: ${mismatch.reason} ${String(mismatch.actual ?? '')} differs from the manifest's ${String(mismatch.expected ?? '')}`,
        details: { file: mismatch.path, reason: mismatch.reason },
      });
    }
  } catch (error) {
    // Any failure while reading is either the checksum mismatch or what it caused.
    let explained = reader.explain(error);
    try {
      reader.check();
    } catch (mismatch) {
      explained = mismatch as WardenError;
    }
    add({ kind: 'corrupt', object: archive.key, message: explained.message });
  }
}

async function drain(stream: Readable, counter: ByteCounter): Promise<[]> {
  await pipeline(stream, counter, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) void chunk;
  });
  return [];
}

/** Reads an object through readVerified (keeping the bytes when `keep`); records a problem and returns undefined when damaged. */
async function readObject(
  store: ObjectStore,
  object: StoredObject,
  compression: Compression,
  add: AddProblem,
  checked: VerifyReport['checked'],
  keep = true,
  keys?: RepositoryKeys,
): Promise<Buffer | undefined> {
  checked.objects += 1;
  if (!(await store.stat(object.key))) {
    add({ kind: 'missing', object: object.key, message: `${object.key} is missing` });
    return undefined;
  }
  const plaintext = object.encryption ? await notAgeProblem(store, object.key) : undefined;
  if (plaintext) {
    add(plaintext);
    return undefined;
  }
  const reader = readVerified(store, object, compression, keys);
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of reader.stream as AsyncIterable<Buffer>) if (keep) chunks.push(chunk);
    reader.check();
    checked.bytes += object.size;
    return Buffer.concat(chunks);
  } catch (error) {
    let explained = reader.explain(error);
    try {
      reader.check();
    } catch (mismatch) {
      explained = mismatch as WardenError;
    }
    add({ kind: 'corrupt', object: object.key, message: explained.message });
    return undefined;
  }
}

interface WalResult {
  good: WalInventory;
  recorded: Map<number, SegmentRecord[]>;
  histories: Map<number, TimelineHistoryEntry[]>;
  historyPresent: Set<number>;
}

async function verifyWal(
  repository: Repository,
  problems: VerifyProblem[],
  checked: VerifyReport['checked'],
  concurrency: number,
  abortCheck: () => void,
  encryptedBackups: boolean,
  signed: (record: unknown, object: string, breaks: string) => boolean,
): Promise<WalResult> {
  const store = repository.store;
  const segmentSize = repository.meta.walSegmentSize;
  const keys = await store.list('wal/');
  const recorded = new Map<number, SegmentRecord[]>();
  const goodSegments = new Map<number, SegmentRecord[]>();
  const partials: PartialSegment[] = [];
  const partialKeys: string[] = [];
  const histories = new Map<number, TimelineHistoryEntry[]>();
  const historyPresent = new Set<number>();
  let streamState: StreamState | undefined;
  const bad = (object: string, message: string, kind: VerifyProblem['kind'] = 'bad-record') =>
    problems.push({ kind, object, message, breaks: '' });

  for (const key of keys) {
    const file = key.slice(key.lastIndexOf('/') + 1);
    if (key.startsWith('wal/history/')) {
      const timeline = parseHistoryFileName(file);
      if (timeline === undefined) continue;
      historyPresent.add(timeline);
      checked.objects += 1;
      try {
        const data = await store.getBuffer(key);
        if (!(await historyMatchesRecord(repository, timeline, data, problems, signed))) continue;
        histories.set(timeline, parseTimelineHistory(new TextDecoder('utf-8', { fatal: true }).decode(data)));
      } catch (error) {
        problems.push({
          kind: 'bad-record',
          object: key,
          message: `timeline history cannot be read: ${(error as Error).message}`,
          breaks: `restores across the switch to timeline ${timeline} are impossible`,
        });
      }
    } else if (key === STREAM_STATE_KEY) {
      checked.objects += 1;
      try {
        const state = strictJson(await store.getBuffer(key)) as StreamState;
        if (signed(state, key, 'restores refuse the repository until the stream state is rewritten'))
          streamState = state;
      } catch (error) {
        problems.push({
          kind: 'bad-record',
          object: key,
          message: `stream state cannot be read: ${(error as Error).message}`,
          breaks: 'the end of the restorable window is unknown (restore --latest uses the archived WAL only)',
        });
      }
    } else if (file.endsWith('.json') && file.length === 29) {
      checked.objects += 1;
      try {
        const record = readSegmentRecord(await store.getBuffer(key), key, segmentSize);
        // An untrusted record is no evidence of WAL: continuity then shows what it breaks.
        if (!signed(record, key, 'restores refuse the repository while this record is in it')) continue;
        const list = recorded.get(record.timeline) ?? [];
        list.push(record);
        recorded.set(record.timeline, list);
      } catch (error) {
        bad(key, `segment record cannot be read: ${(error as Error).message}`);
      }
    } else if (file.endsWith('.partial')) {
      partialKeys.push(key);
    }
  }

  // After the records: whether the repository is encrypted decides what a clear partial is.
  const encrypted = () =>
    encryptedBackups || [...recorded.values()].some((list) => list.some((record) => record.encryption));
  for (const key of partialKeys) {
    abortCheck();
    checked.objects += 1;
    const { partial, problem } = await checkPartial(repository, key, encrypted);
    if (problem) problems.push({ breaks: '', ...problem });
    else if (partial && partial.validBytes > 0) partials.push(partial);
  }

  const queue = [...recorded.values()].flat();
  const worker = async () => {
    for (let record = queue.shift(); record; record = queue.shift()) {
      abortCheck();
      checked.objects += 1;
      checked.walSegments += 1;
      const key = segmentDataKey(record.timeline, record.segment);
      if (!(await store.stat(key))) {
        bad(key, `WAL segment ${record.segment} is missing (its record exists)`, 'missing');
        continue;
      }
      const plaintext = record.encryption
        ? await notAgeProblem(store, key, record.container === 'sealed-partial')
        : undefined;
      if (plaintext) {
        problems.push({ breaks: '', ...plaintext });
        continue;
      }
      try {
        const raw = await readSegment(repository, record);
        if (raw.length !== segmentSize)
          throw new Error(`decompresses to ${raw.length} bytes, not ${segmentSize}`);
        checked.bytes += record.size;
        const list = goodSegments.get(record.timeline) ?? [];
        list.push(record);
        goodSegments.set(record.timeline, list);
      } catch (error) {
        bad(key, (error as Error).message, 'corrupt');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  for (const list of [...recorded.values(), ...goodSegments.values()])
    list.sort((a, b) => a.segment.localeCompare(b.segment));
  return {
    good: {
      segments: goodSegments,
      partials,
      histories: [...historyPresent].sort((a, b) => a - b),
      ...(streamState ? { streamState } : {}),
    },
    recorded,
    histories,
    historyPresent,
  };
}

async function verifyDumps(
  store: ObjectStore,
  problems: VerifyProblem[],
  checked: VerifyReport['checked'],
  keys: RepositoryKeys | undefined,
  signed: (record: unknown, object: string, breaks: string) => boolean,
): Promise<void> {
  for (const key of (await store.list('dumps/')).filter((k) => k.endsWith(`/${DUMP_RECORD_FILE}`))) {
    const id = key.split('/')[1]!;
    const breaks = `dump ${id} unrestorable`;
    checked.objects += 1;
    checked.dumps += 1;
    let record;
    try {
      record = parseDumpRecord(await store.getBuffer(key), key);
      if (record.id !== id || !record.object.key.startsWith(`dumps/${id}/`))
        throw new Error('names another dump');
    } catch (error) {
      problems.push({
        kind: 'bad-record',
        object: key,
        message: `dump record cannot be read: ${((error as Error).cause as Error)?.message ?? (error as Error).message}`,
        breaks,
      });
      continue;
    }
    if (!signed(record, key, breaks)) continue;
    await readObject(
      store,
      record.object,
      record.compression,
      (problem) => problems.push({ breaks, ...problem }),
      checked,
      false,
      keys,
    );
  }
}

/**
 * A history file against its record (size, SHA-256, signature): a record that is absent counts
 * as unsigned. False (with the problem added) when a restore would refuse the file.
 */
async function historyMatchesRecord(
  repository: Repository,
  timeline: number,
  data: Buffer,
  problems: VerifyProblem[],
  signed: (record: unknown, object: string, breaks: string) => boolean,
): Promise<boolean> {
  const breaks = `restores across the switch to timeline ${timeline} are refused`;
  const recordKey = historyRecordKey(timeline);
  const key = recordKey.slice(0, -'.json'.length);
  if (!(await repository.store.stat(recordKey))) return signed({}, key, breaks);
  const record = strictJson(await repository.store.getBuffer(recordKey)) as HistoryRecord;
  if (!signed(record, recordKey, breaks)) return false;
  if (record.timeline !== timeline || record.size !== data.length || record.sha256 !== sha256(data)) {
    problems.push({
      kind: 'corrupt',
      object: key,
      message: `${key} does not match the size and SHA-256 of its record ${recordKey}`,
      breaks,
    });
    return false;
  }
  return true;
}
