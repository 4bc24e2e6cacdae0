import type { Logger } from 'pino';
import { WardenError } from '../errors.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { silentLogger } from '../logger.ts';
import type { BackupRecord } from '../repository/backup-catalog.ts';
import { backupChain } from '../repository/backup-chain.ts';
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
import { restorableWindow } from '../repository/restorable-window.ts';
import { findLeftovers, leftoverCount } from '../retention/leftovers.ts';
import { assessWalGaps, listWalGaps } from '../repository/wal-gap-incidents.ts';
import { StepRecorder } from '../util/step-recorder.ts';
import { parseSegmentName } from '../wal/lsn.ts';
import {
  parseHistoryFileName,
  parseTimelineHistory,
  type TimelineHistoryEntry,
} from '../wal/timeline-history.ts';
import { verifyBackup } from './backup-verify.ts';
import { verifyDumps } from './dump-verify.ts';
import { verifyRedisBackups } from '../redis-backup/redis-verify.ts';
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
  const checked = {
    objects: 0,
    bytes: 0,
    backups: 0,
    manifestFiles: 0,
    walSegments: 0,
    dumps: 0,
    redisBackups: 0,
  };
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

  await steps.run(
    'Redis backups',
    async () => {
      const outcome = await verifyRedisBackups(store, problems, checked, options.keys, signed);
      checked.redisBackups = outcome.backups;
      return outcome;
    },
    (o) =>
      `${o.backups} Redis backup(s)${o.contentsUnchecked ? `; RDB contents unchecked: ${o.contentsUnchecked}` : ''}`,
  );

  // Not damage (no record points to them), so not problems: named so the next `expire` is known
  // to help.
  const leftovers = await steps.run(
    'leftovers',
    () => findLeftovers(store),
    (found) => `${leftoverCount(found)} found`,
  );

  // Gaps the receiver recorded: a finding (restores from older backups stop at each), not damage;
  // a gap record that fails its check is a problem (a gap may hide behind it).
  const walGaps = await steps.run(
    'recorded WAL gaps',
    async () => {
      const recorded = await listWalGaps(repository);
      for (const u of recorded.unreadable)
        problems.push({
          kind: u.code === 'WARDEN_E_REPO_FORMAT' ? 'bad-record' : 'signature',
          object: u.object,
          message: u.message,
          breaks: 'status cannot tell whether this WAL gap was resolved',
          details: { code: u.code },
        });
      return assessWalGaps(recorded.gaps, backups, wal.good);
    },
    (gaps) => `${gaps.length} recorded, ${gaps.filter((g) => g.state === 'unresolved').length} unresolved`,
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
    ...(problems.length ? { code: 'WARDEN_E_REPO_VERIFY_PROBLEMS' as const } : {}),
    checked,
    backups: verdicts,
    window,
    ...(continuity.walEnd ? { walEnd: continuity.walEnd } : {}),
    problems,
    ...(modes ? { modes } : {}),
    leftovers,
    walGaps,
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
