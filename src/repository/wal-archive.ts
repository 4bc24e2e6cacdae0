import { decompress } from 'zstd-napi';
import { WardenError } from '../errors.ts';
import { decryptBuffer, encryptBuffer } from '../pipeline/encryption/age-stream.ts';
import { encryptionRecord, type ObjectEncryption } from '../pipeline/encryption/repository-keys.ts';
import { sha256 } from '../pipeline/hashing.ts';
import { formatLsn, parseSegmentName, type Lsn } from '../wal/lsn.ts';
import {
  parseHistoryFileName,
  parseTimelineHistory,
  type TimelineHistoryEntry,
} from '../wal/timeline-history.ts';
import { ZstdPool } from '../pipeline/zstd-pool.ts';
import { summarizeSegment, type SegmentSummary } from '../wal/segment-summary.ts';
import { openPartial, scanPartial, type PartialLayout } from '../wal/partial-format.ts';
import { assertTrustedPartial } from '../wal/partial-signature.ts';
import type { RecordSignature, TrustPolicy } from '../pipeline/signing/record-signature.ts';
import { checkTrusted, signedForWrite } from './record-trust.ts';
import type { ObjectStore } from './object-store.ts';
import type { Repository } from './repository.ts';
import { claimSegment } from './segment-claim.ts';

/**
 * The WAL archive inside a repository:
 *   wal/<TLI>/<segment>.zst     a complete segment, zstd-compressed
 *   wal/<TLI>/<segment>.json    its record (checksum, commit times); written after the data,
 *                               so a segment counts as archived only once this exists
 *   wal/<TLI>/<segment>.partial the segment being received: framed (sealed or checksummed per
 *                               flush, see wal/partial-format.ts), appended and fsynced
 *   wal/history/<TLI>.history   timeline history files
 *   wal/history/<TLI>.history.json  a history file's record (size, SHA-256, signature)
 *   wal/stream-state.json       the receiver's last caught-up point (LSN + server time)
 */
export interface SegmentRecord {
  format: 1;
  segment: string;
  timeline: number;
  startLsn: string;
  /** `none` only for a `sealed-partial` container. */
  compression: 'zstd' | 'none';
  /**
   * Present when the stored bytes are an age file wrapping the zstd data — or, with `container`,
   * a sealed partial segment whose file key is wrapped to these recipients.
   */
  encryption?: ObjectEncryption;
  /**
   * `sealed-partial`: the stored bytes are the segment's sealed partial file as it was received
   * (wal/partial-format.ts), archived by a receiver that holds no identity to open it (a leftover
   * after a crash); read with the identities like the partial itself. No commit summary.
   */
  container?: 'sealed-partial';
  size: number;
  sha256: string;
  /** Bytes of real WAL; less than the segment size only for a segment cut by a timeline switch. */
  validBytes: number;
  /**
   * SHA-256 of the raw segment (all of its bytes, before compression and encryption): the stored
   * bytes differ at each write (a fresh encryption key), this does not, so a second writer of the
   * same segment (`warden wal push` beside the stream) can tell "same" from "different" without a
   * decryption key. Absent in records written before it existed.
   */
  walSha256?: string;
  firstCommitTime?: string;
  lastCommitTime?: string;
  lastCommitLsn?: string;
  commits: number;
  /** Named restore points whose records lie wholly in this segment, in WAL order (start LSN). */
  restorePoints?: Array<{ name: string; lsn: string; time: string }>;
  /** Ed25519 signature of the writer's signing key over the rest of the record (docs/security.md). */
  signature?: RecordSignature;
}

/**
 * `wal/history/<TLI>.history.json`: the record of a timeline history file (PostgreSQL's own
 * format has no room for one), so the file is covered by a checksum and a signature.
 */
export interface HistoryRecord {
  format: 1;
  timeline: number;
  size: number;
  sha256: string;
  signature?: RecordSignature;
}

export interface PartialSegment {
  key: string;
  segment: string;
  timeline: number;
  startLsn: Lsn;
  /** WAL bytes in the partial's complete frames (read from its layout, no key needed). */
  validBytes: number;
  /** How it is stored; `damaged` when its layout is broken (it then counts as holding nothing). */
  format?: PartialLayout['format'] | 'damaged';
}

export interface StreamState {
  timeline: number;
  /** Everything before this LSN is durable in the repository. */
  flushedLsn: string;
  /** Server clock of the last message at which the receiver had everything the server had. */
  caughtUpAt: string;
  updatedAt: string;
  signature?: RecordSignature;
}

export const STREAM_STATE_KEY = 'wal/stream-state.json';

export function timelineDir(timeline: number): string {
  return `wal/${timeline.toString(16).toUpperCase().padStart(8, '0')}/`;
}

export function segmentDataKey(timeline: number, segment: string): string {
  return `${timelineDir(timeline)}${segment}.zst`;
}

export function partialKey(timeline: number, segment: string): string {
  return `${timelineDir(timeline)}${segment}.partial`;
}

/**
 * Removes what a replacement of this partial segment cut short by a kill left (its temp object;
 * see SegmentWriter). Only for the holder of the stream lock, the one writer of partials.
 */
export async function removePartialTemps(store: ObjectStore, key: string): Promise<void> {
  const dir = key.slice(0, key.lastIndexOf('/') + 1);
  for (const stale of await store.list(dir, { includeIncomplete: true }))
    if (stale.startsWith(`${key}.tmp-`)) await store.delete(stale);
}

export function historyKey(timeline: number): string {
  return `wal/history/${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
}

export function historyRecordKey(timeline: number): string {
  return `${historyKey(timeline)}.json`;
}

export function segmentRecordKey(timeline: number, segment: string): string {
  return `${timelineDir(timeline)}${segment}.json`;
}

/** The claim a writer of this segment holds while it stores data and record (segment-claim.ts). */
export function segmentClaimKey(timeline: number, segment: string): string {
  return `${timelineDir(timeline)}${segment}.claim`;
}

/** Stores a timeline history file, then its record (signed when the handle holds a signing key). */
export async function storeHistory(repository: Repository, timeline: number, content: Buffer): Promise<void> {
  await repository.store.putBuffer(historyKey(timeline), content);
  await repository.store.putBuffer(
    historyRecordKey(timeline),
    historyRecordBytes(repository, timeline, content),
  );
}

/** The serialized (and, with a signing key, signed) record of a history file's content. */
function historyRecordBytes(repository: Repository, timeline: number, content: Buffer): Buffer {
  const record: HistoryRecord = { format: 1, timeline, size: content.length, sha256: sha256(content) };
  return Buffer.from(JSON.stringify(signedForWrite(repository, historyRecordKey(timeline), record)));
}

/** Writes the receiver's caught-up point (signed when the handle holds a signing key). */
export async function writeStreamState(repository: Repository, state: StreamState): Promise<void> {
  await repository.store.putBuffer(
    STREAM_STATE_KEY,
    Buffer.from(JSON.stringify(signedForWrite(repository, STREAM_STATE_KEY, state))),
  );
}

/**
 * Reads a timeline history file. With a trust set, the file must match the size and SHA-256 of
 * its record, and the record must be signed by a trusted key (or be absent or unsigned under
 * allowUnsigned, reported as the history file).
 */
export async function readHistory(repository: Repository, timeline: number): Promise<Buffer> {
  const key = historyKey(timeline);
  const content = await repository.store.getBuffer(key);
  if (!repository.keys.trust) return content;
  const recordKey = historyRecordKey(timeline);
  const record = (await repository.store.stat(recordKey))
    ? (parseJson(await repository.store.getBuffer(recordKey), recordKey) as HistoryRecord)
    : undefined;
  if (!record) {
    // No record at all (written before records existed) counts as unsigned.
    checkTrusted(repository, key, {});
    return content;
  }
  checkTrusted(repository, recordKey, record);
  if (record.timeline !== timeline || record.size !== content.length || record.sha256 !== sha256(content))
    throw new WardenError(
      'WARDEN_E_SIGNATURE_INVALID',
      `${key} does not match its signed record ${recordKey}`,
      {
        hint: 'The history file was changed after it was recorded: the repository has been tampered with or damaged.',
        details: { object: key },
      },
    );
  return content;
}

function parseJson(data: Buffer, key: string): unknown {
  try {
    return JSON.parse(data.toString('utf8')) as unknown;
  } catch (cause) {
    throw new WardenError('WARDEN_E_REPO_FORMAT', `${key} cannot be read`, {
      details: { object: key },
      cause,
    });
  }
}

/**
 * Compresses (and, when the repository handle has recipients, encrypts) and stores one finished
 * segment, then its record (the segment's commit marker). Takes ownership of `raw`: it is
 * transferred to a compression worker, so callers must not use it afterwards.
 */
export async function archiveSegment(
  repository: Repository,
  timeline: number,
  segment: string,
  raw: Buffer,
  validBytes: number,
  options: ArchiveOptions = {},
): Promise<SegmentRecord> {
  const segmentSize = repository.meta.walSegmentSize;
  const parsed = parseSegmentName(segment, segmentSize);
  if (!parsed) throw new WardenError('WARDEN_E_INTERNAL', `bad segment name ${segment}`);
  const walSha256 = sha256(raw);
  const release = await claimSegment(repository.store, segmentClaimKey(timeline, segment), options.signal);
  try {
    const existing = await readStoredRecord(repository, timeline, segment);
    if (existing?.walSha256 === walSha256) return existing; // archived already, by this path or the other
    if (existing && options.onDifferent === 'refuse') {
      if (existing.walSha256 === undefined && (await storedRawSha(repository, existing)) === walSha256)
        return existing;
      throw pushConflict(segment, existing, walSha256);
    }
    return await storeSegment(repository, timeline, segment, parsed.startLsn, raw, validBytes, walSha256);
  } finally {
    await release();
  }
}

export interface ArchiveOptions {
  /**
   * A stored segment of the same name with other content: `replace` it (the receiver, which
   * rewrites what it streamed before a crash) or `refuse` (`warden wal push`:
   * WARDEN_E_WAL_PUSH_CONFLICT). An identical one is kept as it is either way.
   */
  onDifferent?: 'replace' | 'refuse';
  signal?: AbortSignal;
}

/** The stored record of a segment, or undefined when it has none. */
export async function readStoredRecord(
  repository: Repository,
  timeline: number,
  segment: string,
): Promise<SegmentRecord | undefined> {
  const key = segmentRecordKey(timeline, segment);
  if (!(await repository.store.stat(key))) return undefined;
  return parseJson(await repository.store.getBuffer(key), key) as SegmentRecord;
}

/** A record from before `walSha256`: its raw bytes' hash, when this handle can read them. */
async function storedRawSha(repository: Repository, record: SegmentRecord): Promise<string | undefined> {
  try {
    return sha256(await readSegment(repository, record));
  } catch {
    return undefined; // no key to open it, or damaged: not provably the same
  }
}

function pushConflict(segment: string, existing: SegmentRecord, walSha256: string): WardenError {
  return new WardenError(
    'WARDEN_E_WAL_PUSH_CONFLICT',
    `the repository already holds WAL segment ${segment} with other content`,
    {
      hint: 'Another cluster (or a reused timeline) archived a segment of this name here; nothing was overwritten. Give each cluster its own repository.',
      details: {
        file: segment,
        storedWalSha256: existing.walSha256 ?? 'not recorded (written by an older Warden)',
        pushedWalSha256: walSha256,
      },
    },
  );
}

async function storeSegment(
  repository: Repository,
  timeline: number,
  segment: string,
  startLsn: Lsn,
  raw: Buffer,
  validBytes: number,
  walSha256: string,
): Promise<SegmentRecord> {
  const segmentSize = repository.meta.walSegmentSize;
  const parsed = { startLsn };
  const summary = safeSummary(raw, parsed.startLsn, timeline, segmentSize, validBytes);
  // Off the event loop (a worker thread), so the WAL receiver keeps receiving meanwhile.
  // `raw` is handed over (transferred when it owns its memory): callers give up the buffer.
  const compressed = await ZstdPool.get().compress(raw, 3);
  const recipients = repository.keys.recipients;
  const stored = recipients?.length ? await encryptBuffer(compressed, recipients) : compressed;
  const record: SegmentRecord = {
    format: 1,
    segment,
    timeline,
    startLsn: formatLsn(parsed.startLsn),
    compression: 'zstd',
    ...(recipients?.length ? { encryption: encryptionRecord(recipients) } : {}),
    size: stored.length,
    sha256: sha256(stored),
    validBytes,
    walSha256,
    commits: summary?.commits ?? 0,
    ...(summary?.firstCommitTime ? { firstCommitTime: summary.firstCommitTime.toISOString() } : {}),
    ...(summary?.lastCommitTime ? { lastCommitTime: summary.lastCommitTime.toISOString() } : {}),
    ...(summary?.lastCommitLsn !== undefined ? { lastCommitLsn: formatLsn(summary.lastCommitLsn) } : {}),
    ...(summary?.restorePoints.length
      ? {
          restorePoints: summary.restorePoints.map((rp) => ({
            name: rp.name,
            lsn: formatLsn(rp.lsn),
            time: rp.time.toISOString(),
          })),
        }
      : {}),
  };
  await repository.store.putBuffer(segmentDataKey(timeline, segment), stored);
  const recordKey = segmentRecordKey(timeline, segment);
  const signed = signedForWrite(repository, recordKey, record);
  await repository.store.putBuffer(recordKey, Buffer.from(JSON.stringify(signed)));
  return signed;
}

/**
 * Archives a leftover sealed partial segment as it is stored (it cannot be opened without an
 * identity, and the receiver holds only recipients): the bytes become the segment's data object,
 * the record says `container: "sealed-partial"`. The record is written last, as for any segment.
 */
export async function archiveSealedSegment(
  repository: Repository,
  partial: Pick<PartialSegment, 'timeline' | 'segment' | 'startLsn'>,
  sealed: Buffer,
  validBytes: number,
): Promise<SegmentRecord> {
  const recipients = repository.keys.recipients ?? [];
  const record: SegmentRecord = {
    format: 1,
    segment: partial.segment,
    timeline: partial.timeline,
    startLsn: formatLsn(partial.startLsn),
    compression: 'none',
    container: 'sealed-partial',
    encryption: encryptionRecord(recipients),
    size: sealed.length,
    sha256: sha256(sealed),
    validBytes,
    commits: 0,
  };
  await repository.store.putBuffer(segmentDataKey(partial.timeline, partial.segment), sealed);
  const recordKey = segmentRecordKey(partial.timeline, partial.segment);
  const signed = signedForWrite(repository, recordKey, record);
  await repository.store.putBuffer(recordKey, Buffer.from(JSON.stringify(signed)));
  return signed;
}

function safeSummary(
  raw: Buffer,
  startLsn: Lsn,
  timeline: number,
  segmentSize: number,
  validBytes: number,
): SegmentSummary | undefined {
  try {
    return summarizeSegment(raw, { timeline, startLsn, segmentSize, validBytes });
  } catch {
    // A summary only speeds up planning; an unparsable segment is still archived as received.
    return undefined;
  }
}

export interface WalInventory {
  /** Archived segments per timeline, sorted by segment name. */
  segments: Map<number, SegmentRecord[]>;
  partials: PartialSegment[];
  histories: number[];
  /** Parsed history file of each timeline that has one (its ancestors and switch points). */
  historyEntries?: Map<number, TimelineHistoryEntry[]>;
  streamState?: StreamState;
}

export async function readWalInventory(repository: Repository): Promise<WalInventory> {
  const keys = await repository.store.list('wal/');
  const segmentSize = repository.meta.walSegmentSize;
  const segments = new Map<number, SegmentRecord[]>();
  const partials: PartialSegment[] = [];
  const histories: number[] = [];
  const historyEntries = new Map<number, TimelineHistoryEntry[]>();
  for (const key of keys) {
    const file = key.slice(key.lastIndexOf('/') + 1);
    if (key.startsWith('wal/history/')) {
      const timeline = parseHistoryFileName(file);
      if (timeline === undefined) continue; // a history file's record, read with the file
      histories.push(timeline);
      let content: Buffer | undefined;
      try {
        content = await readHistory(repository, timeline);
      } catch (error) {
        // With a trust set, a history that fails its check is refused, never skipped.
        if (repository.keys.trust) throw error;
      }
      try {
        if (content) historyEntries.set(timeline, parseTimelineHistory(content.toString('utf8')));
      } catch {
        // An unreadable history file leaves that timeline without ancestors: planning then
        // offers only WAL of the timeline itself, never a wrong chain.
      }
    } else if (file.endsWith('.json') && file.length === 29) {
      const record = parseJson(await repository.store.getBuffer(key), key) as SegmentRecord;
      checkTrusted(repository, key, record);
      const list = segments.get(record.timeline) ?? [];
      list.push(record);
      segments.set(record.timeline, list);
    } else if (file.endsWith('.partial')) {
      const segment = file.slice(0, 24);
      const parsed = parseSegmentName(segment, segmentSize);
      const layout = parsed ? await partialLayout(repository, key) : undefined;
      if (parsed && layout)
        partials.push({ key, segment, timeline: parsed.timeline, startLsn: parsed.startLsn, ...layout });
    }
  }
  for (const list of segments.values()) list.sort((a, b) => a.segment.localeCompare(b.segment));
  const state = keys.includes(STREAM_STATE_KEY)
    ? (parseJson(await repository.store.getBuffer(STREAM_STATE_KEY), STREAM_STATE_KEY) as StreamState)
    : undefined;
  if (state) checkTrusted(repository, STREAM_STATE_KEY, state);
  return {
    segments,
    partials,
    histories: histories.sort((a, b) => a - b),
    historyEntries,
    ...(state ? { streamState: state } : {}),
  };
}

/**
 * Reads an archived segment back, checking its checksum and decrypting it with the repository
 * handle's identities; returns the raw 16 MB (or configured) segment.
 */
export async function readSegment(repository: Repository, record: SegmentRecord): Promise<Buffer> {
  const key = segmentDataKey(record.timeline, record.segment);
  const stored = await repository.store.getBuffer(key);
  if (stored.length !== record.size || sha256(stored) !== record.sha256) {
    throw new WardenError(
      'WARDEN_E_REPO_CORRUPT',
      `WAL segment ${key} does not match its recorded checksum`,
      {
        hint: 'The repository was damaged; PITR through this segment is impossible from this copy.',
        details: { object: key, expectedSize: record.size, actualSize: stored.length },
      },
    );
  }
  if (record.container === 'sealed-partial') {
    const opened = await openPartial(stored, {
      object: key,
      segment: record.segment,
      segmentSize: repository.meta.walSegmentSize,
      identities: repository.keys.identities ?? [],
    });
    const raw = Buffer.alloc(repository.meta.walSegmentSize);
    opened.wal.copy(raw);
    return raw;
  }
  const compressed = record.encryption
    ? await decryptBuffer(stored, { identities: repository.keys.identities ?? [], object: key })
    : stored;
  try {
    return decompress(compressed);
  } catch (cause) {
    throw new WardenError('WARDEN_E_REPO_CORRUPT', `WAL segment ${key} cannot be decompressed`, {
      details: { object: key },
      cause,
    });
  }
}

type Layout = { validBytes: number; format: NonNullable<PartialSegment['format']> };

/**
 * Layouts of partials already scanned, by store location and key, valid while the object keeps
 * its size: the inventory is polled (status, a backup waiting for the receiver every 200 ms), and
 * scanning needs the whole object, on S3 a download of up to a segment. A partial only grows
 * between restreams, and a restream starts from an empty object, so an unchanged size is an
 * unchanged object in everything but a pathological case, which costs a stale length until the
 * next flush.
 */
const layouts = new Map<string, Layout & { size: number }>();

/** A partial segment's WAL length and format from its frame layout (keyless, no decryption). */
async function partialLayout(repository: Repository, key: string): Promise<Layout | undefined> {
  const id = `${repository.store.location}\n${key}`;
  const info = await repository.store.stat(key);
  if (!info) {
    layouts.delete(id);
    return undefined; // archived and removed since the listing
  }
  const cached = layouts.get(id);
  if (cached?.size === info.size) return { validBytes: cached.validBytes, format: cached.format };
  let data: Buffer;
  try {
    data = await repository.store.getBuffer(key);
  } catch (error) {
    if (!(await repository.store.stat(key))) return undefined;
    throw error;
  }
  let layout: Layout;
  try {
    const scanned = scanPartial(data, key, repository.meta.walSegmentSize);
    layout = { validBytes: scanned.validBytes, format: scanned.format };
  } catch {
    // Damage is named by verify and by any reader of the bytes; here it holds no usable WAL.
    layout = { validBytes: 0, format: 'damaged' };
  }
  if (layouts.size > 1000) layouts.clear();
  layouts.set(id, { ...layout, size: data.length });
  return layout;
}

/** A trust set as openPartial takes it (none: signatures are not checked). */
function partialTrust(
  repository: Repository,
  policy: TrustPolicy | undefined,
): Pick<Parameters<typeof openPartial>[1], 'trust'> {
  return policy ? { trust: { policy, systemId: repository.meta.systemId } } : {};
}

/**
 * With the handle's trust set, refuses a partial segment whose frames are not all signed by a
 * trusted key (WARDEN_E_UNSIGNED unless allowUnsigned, _SIGNATURE_UNTRUSTED, _SIGNATURE_INVALID),
 * reading only its stored bytes (no key needed). Damage is left to the reader of the bytes.
 */
export async function checkPartialTrusted(
  repository: Repository,
  partial: Pick<PartialSegment, 'key' | 'segment'>,
): Promise<void> {
  const policy = repository.keys.trust;
  if (!policy) return;
  let data: Buffer;
  try {
    data = await repository.store.getBuffer(partial.key);
  } catch (error) {
    if (!(await repository.store.stat(partial.key))) return; // archived since the listing
    throw error;
  }
  let layout: PartialLayout;
  try {
    layout = scanPartial(data, partial.key, repository.meta.walSegmentSize);
  } catch {
    return;
  }
  assertTrustedPartial(
    data,
    layout,
    { object: partial.key, segment: partial.segment, systemId: repository.meta.systemId },
    policy,
  );
}

/**
 * Reads the partial segment back as a zero-padded segment: every frame authenticated with the
 * repository handle's identities (sealed) or checked against its checksum — and, with the
 * handle's trust set, signed by a trusted key. Errors as openPartial.
 */
export async function readPartialSegment(
  repository: Repository,
  partial: Pick<PartialSegment, 'key' | 'segment'>,
  /** The receiver passes its own key here (a writer's handle has no trust set). */
  trust: TrustPolicy | undefined = repository.keys.trust,
): Promise<{ raw: Buffer; validBytes: number; format: PartialLayout['format'] }> {
  const segmentSize = repository.meta.walSegmentSize;
  const opened = await openPartial(await repository.store.getBuffer(partial.key), {
    object: partial.key,
    segment: partial.segment,
    segmentSize,
    ...(repository.keys.identities ? { identities: repository.keys.identities } : {}),
    ...partialTrust(repository, trust),
  });
  const raw = Buffer.alloc(segmentSize);
  opened.wal.copy(raw);
  return { raw, validBytes: opened.validBytes, format: opened.format };
}

/**
 * A partial segment's WAL, or the archived segment's when the receiver archived it since the
 * listing: it commits the archived copy first and removes the partial after, so a reader that
 * listed the partial (a verification or drill restore right after a backup) finds the archived
 * one in its place — verified as any archived segment is — instead of failing on a gone object.
 */
export async function readPartialOrArchived(
  repository: Repository,
  partial: Pick<PartialSegment, 'key' | 'segment' | 'timeline'>,
): Promise<Buffer> {
  try {
    return (await readPartialSegment(repository, partial)).raw;
  } catch (error) {
    if (await repository.store.stat(partial.key)) throw error;
    const recordKey = segmentRecordKey(partial.timeline, partial.segment);
    if (!(await repository.store.stat(recordKey))) throw error;
    const record = parseJson(await repository.store.getBuffer(recordKey), recordKey) as SegmentRecord;
    checkTrusted(repository, recordKey, record);
    if (record.timeline !== partial.timeline || record.segment !== partial.segment) throw error;
    return readSegment(repository, record);
  }
}
