import { createHash } from 'node:crypto';
import { checkRecordSignature, signRecord } from '../pipeline/signing/record-signature.ts';
import type { SigningKey } from '../pipeline/signing/signing-keys.ts';
import { sha256 } from '../pipeline/hashing.ts';
import { parseTimelineHistory, parseHistoryFileName } from '../wal/timeline-history.ts';
import { backupObjects, type BackupRecord, type StoredObject } from './backup-catalog.ts';
import { DUMP_RECORD_FILE, type DumpRecord } from './dump-catalog.ts';
import type { ObjectStore } from './object-store.ts';
import { META_KEY, parseRepositoryMeta } from './repository-meta.ts';
import {
  historyKey,
  historyRecordKey,
  segmentDataKey,
  STREAM_STATE_KEY,
  type HistoryRecord,
  type SegmentRecord,
} from './wal-archive.ts';

export interface SignReport {
  repository: string;
  /** The key that signs (`wardensig1...`). */
  key: string;
  /** False for a dry run: `toSign` is what would be signed. */
  applied: boolean;
  /** Records (and history files, through their new records) checked and signed, or to be signed. */
  toSign: string[];
  /** Records already carrying a valid signature, by signing key. */
  alreadySigned: Record<string, number>;
  /** Records left unsigned: an object they list is missing or differs, or the record itself is bad. */
  failed: Array<{ object: string; reason: string }>;
}

interface Pending {
  object: string;
  /** The bytes to write once the operator agreed. */
  write: () => Promise<void>;
}

/**
 * `warden repo sign`: signs a repository written before signing. Every unsigned record is
 * signed only after every object it lists matches its recorded size and SHA-256 (an archive,
 * a WAL segment, a dump are read whole); a record whose objects do not match is reported and
 * left unsigned, so restores keep refusing it. Records that already carry a valid signature are
 * left as they are (whoever's key it is); one whose signature does not match is reported.
 * History files get a record with their size and SHA-256. Without `apply`, nothing is written.
 *
 * Signing says "this key vouches for what is here now": run it once, on a repository whose
 * history you trust (no one else could write it before), as docs/security.md explains.
 */
export async function signRepository(
  store: ObjectStore,
  key: SigningKey,
  options: { apply: boolean },
): Promise<SignReport> {
  const meta = parseRepositoryMeta(await store.getBuffer(META_KEY), store.location);
  const where = (object: string) => ({ object, systemId: meta.systemId });
  const report: SignReport = {
    repository: store.location,
    key: key.id,
    applied: options.apply,
    toSign: [],
    alreadySigned: {},
    failed: [],
  };
  const pending: Pending[] = [];
  const pretty = (value: unknown) => Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
  const compact = (value: unknown) => Buffer.from(JSON.stringify(value));

  /** Classifies a record; true when it is unsigned and so a candidate for signing. */
  const unsigned = (object: string, record: unknown): boolean => {
    const verdict = checkRecordSignature(record, where(object), new Map());
    if (verdict.status === 'unsigned') return true;
    if (verdict.status === 'invalid') report.failed.push({ object, reason: verdict.reason });
    else report.alreadySigned[verdict.key] = (report.alreadySigned[verdict.key] ?? 0) + 1;
    return false;
  };
  const sign = (object: string, record: object, serialize: (value: unknown) => Buffer, reason?: string) => {
    if (reason) {
      report.failed.push({ object, reason });
      return;
    }
    report.toSign.push(object);
    pending.push({
      object,
      write: () => store.putBuffer(object, serialize(signRecord(record, where(object), key))),
    });
  };

  if (unsigned(META_KEY, meta)) sign(META_KEY, meta, pretty);

  for (const object of (await store.list('backups/')).filter((k) =>
    /^backups\/[^/]+\/backup\.json$/.test(k),
  )) {
    const record = await readJson<BackupRecord>(store, object, report);
    if (record && unsigned(object, record))
      sign(object, record, pretty, await mismatch(store, backupObjects(record)));
  }
  for (const object of (await store.list('dumps/')).filter((k) => k.endsWith(`/${DUMP_RECORD_FILE}`))) {
    const record = await readJson<DumpRecord>(store, object, report);
    if (record && unsigned(object, record))
      sign(object, record, pretty, await mismatch(store, [record.object]));
  }
  const walKeys = await store.list('wal/');
  for (const object of walKeys) {
    const file = object.slice(object.lastIndexOf('/') + 1);
    if (object.startsWith('wal/history/')) {
      const timeline = parseHistoryFileName(file);
      if (timeline !== undefined) await planHistory(store, timeline, walKeys, report, unsigned, sign);
    } else if (object === STREAM_STATE_KEY) {
      const record = await readJson<object>(store, object, report);
      if (record && unsigned(object, record)) sign(object, record, compact);
    } else if (file.endsWith('.json') && file.length === 29) {
      const record = await readJson<SegmentRecord>(store, object, report);
      if (record && unsigned(object, record))
        sign(
          object,
          record,
          compact,
          await mismatch(store, [{ key: segmentDataKey(record.timeline, record.segment), ...record }]),
        );
    }
  }
  if (options.apply) for (const item of pending) await item.write();
  return report;
}

async function planHistory(
  store: ObjectStore,
  timeline: number,
  walKeys: readonly string[],
  report: SignReport,
  unsigned: (object: string, record: unknown) => boolean,
  sign: (object: string, record: object, serialize: (value: unknown) => Buffer, reason?: string) => void,
): Promise<void> {
  const recordKey = historyRecordKey(timeline);
  const content = await store.getBuffer(historyKey(timeline));
  let reason: string | undefined;
  try {
    parseTimelineHistory(new TextDecoder('utf-8', { fatal: true }).decode(content));
  } catch (error) {
    reason = `${historyKey(timeline)} is not a readable timeline history: ${(error as Error).message}`;
  }
  const fresh: HistoryRecord = { format: 1, timeline, size: content.length, sha256: sha256(content) };
  if (!walKeys.includes(recordKey)) {
    sign(recordKey, fresh, (value) => Buffer.from(JSON.stringify(value)), reason);
    return;
  }
  const record = await readJson<HistoryRecord>(store, recordKey, report);
  if (!record || !unsigned(recordKey, record)) return;
  if (!reason && (record.size !== fresh.size || record.sha256 !== fresh.sha256))
    reason = `${historyKey(timeline)} does not match the size and SHA-256 of its record`;
  sign(recordKey, record, (value) => Buffer.from(JSON.stringify(value)), reason);
}

async function readJson<T>(store: ObjectStore, object: string, report: SignReport): Promise<T | undefined> {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await store.getBuffer(object))) as T;
  } catch (error) {
    report.failed.push({ object, reason: `cannot be read: ${(error as Error).message}` });
    return undefined;
  }
}

/** Why the objects do not match their records (first one found), or undefined when all do. */
async function mismatch(
  store: ObjectStore,
  objects: ReadonlyArray<Pick<StoredObject, 'key' | 'size' | 'sha256'>>,
): Promise<string | undefined> {
  for (const object of objects) {
    if (!(await store.stat(object.key))) return `${object.key} is missing`;
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of store.get(object.key) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
    if (size !== object.size || hash.digest('hex') !== object.sha256)
      return `${object.key} does not match its recorded size and SHA-256`;
  }
  return undefined;
}
