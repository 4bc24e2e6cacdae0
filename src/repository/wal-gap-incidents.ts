import { isWardenError, WardenError } from '../errors.ts';
import type { RecordSignature } from '../pipeline/signing/record-signature.ts';
import { formatLsn, parseLsn, type Lsn } from '../wal/lsn.ts';
import type { BackupRecord } from './backup-catalog.ts';
import { checkTrusted, signedForWrite } from './record-trust.ts';
import type { Repository } from './repository.ts';
import type { WalInventory } from './wal-archive.ts';

/**
 * Why the repository lacks WAL it should have:
 * - `server-removed-wal`: the server no longer had WAL after the repository's end when the
 *   stream resumed (its slot had moved on, or WAL was recycled);
 * - `slot-invalidated`: the server invalidated the repository's slot (`max_slot_wal_keep_size`);
 * - `slot-recreated`: the repository's slot was gone and was created again, at the server's
 *   current position;
 * - `partial-cut-short`: a leftover partial segment was archived with only the bytes it had,
 *   and the stream resumed after its segment.
 */
export type WalGapCause = 'server-removed-wal' | 'slot-invalidated' | 'slot-recreated' | 'partial-cut-short';

export const WAL_GAP_CAUSES: readonly WalGapCause[] = [
  'server-removed-wal',
  'slot-invalidated',
  'slot-recreated',
  'partial-cut-short',
];

/** One gap incident: WAL in [from, to) on `timeline` is not in the repository and never will be. */
export interface WalGapRecord {
  format: 1;
  timeline: number;
  from: string;
  to: string;
  detectedAt: string;
  cause: WalGapCause;
  /** The slot streamed through when the gap was found. */
  slot?: string;
  signature?: RecordSignature;
}

const INCIDENTS = 'incidents/';
const GAP_KEY = /^incidents\/wal-gap-([0-9A-F]{8})-([0-9A-F]{16})\.json$/;

/** `incidents/wal-gap-<timeline>-<from>.json`: one object per (timeline, from), so recording is idempotent. */
export function walGapKey(timeline: number, from: Lsn): string {
  const tli = timeline.toString(16).toUpperCase().padStart(8, '0');
  return `${INCIDENTS}wal-gap-${tli}-${from.toString(16).toUpperCase().padStart(16, '0')}.json`;
}

/**
 * Records a gap (signed when the handle holds a signing key; `put` is atomic, so no reader sees
 * half a record). Idempotent by (timeline, from): a gap already recorded is kept as found first
 * (its cause and detection time), only its end moves on when the server's position did.
 * Returns the record as stored and whether this call created it.
 */
export async function recordWalGap(
  repository: Repository,
  gap: { timeline: number; from: Lsn; to: Lsn; cause: WalGapCause; slot?: string; detectedAt?: Date },
): Promise<{ record: WalGapRecord; created: boolean }> {
  const key = walGapKey(gap.timeline, gap.from);
  let existing: WalGapRecord | undefined;
  if (await repository.store.stat(key)) {
    try {
      existing = await readWalGap(repository, key);
    } catch (error) {
      // A record that fails its check is replaced by the one this process can vouch for.
      if (!isWardenError(error)) throw error;
    }
  }
  if (existing && parseLsn(existing.to) >= gap.to) return { record: existing, created: false };
  const record: WalGapRecord = {
    format: 1,
    timeline: gap.timeline,
    from: formatLsn(gap.from),
    to: formatLsn(gap.to),
    detectedAt: existing?.detectedAt ?? (gap.detectedAt ?? new Date()).toISOString(),
    cause: existing?.cause ?? gap.cause,
    ...((existing?.slot ?? gap.slot) !== undefined ? { slot: existing?.slot ?? gap.slot } : {}),
  };
  const signed = signedForWrite(repository, key, record);
  await repository.store.putBuffer(key, Buffer.from(JSON.stringify(signed)));
  return { record: signed, created: existing === undefined };
}

/** A gap record that could not be read or trusted (it is reported, never skipped silently). */
export interface UnreadableGap {
  object: string;
  code: string;
  message: string;
}

/** Every recorded gap, oldest position first, each checked; the ones that fail their check apart. */
export async function listWalGaps(
  repository: Repository,
): Promise<{ gaps: WalGapRecord[]; unreadable: UnreadableGap[] }> {
  const gaps: WalGapRecord[] = [];
  const unreadable: UnreadableGap[] = [];
  for (const key of await repository.store.list(INCIDENTS)) {
    if (!key.startsWith(`${INCIDENTS}wal-gap-`)) continue;
    try {
      gaps.push(await readWalGap(repository, key));
    } catch (error) {
      if (!isWardenError(error)) throw error;
      if (error.code === 'WARDEN_E_REPO_IO') throw error;
      unreadable.push({ object: key, code: error.code, message: error.message });
    }
  }
  gaps.sort((a, b) => a.timeline - b.timeline || Number(parseLsn(a.from) - parseLsn(b.from)));
  return { gaps, unreadable };
}

/** Reads one gap record: the repository is untrusted, so every field, the name and the signature are checked. */
async function readWalGap(repository: Repository, key: string): Promise<WalGapRecord> {
  const bad = (problem: string) =>
    new WardenError('WARDEN_E_REPO_FORMAT', `${key} is not a valid WAL gap record: ${problem}`, {
      hint: 'The record was damaged or written by something other than Warden; `warden verify` names it.',
      details: { object: key, problem },
    });
  const name = GAP_KEY.exec(key);
  if (!name) throw bad('unexpected object name');
  let parsed: unknown;
  try {
    parsed = JSON.parse((await repository.store.getBuffer(key)).toString('utf8'));
  } catch (error) {
    if (isWardenError(error)) throw error;
    throw bad('not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('not an object');
  const record = parsed as Record<string, unknown>;
  if (record.format !== 1) throw bad(`unknown format ${String(record.format)}`);
  const { timeline, from, to, detectedAt, cause, slot } = record;
  if (typeof timeline !== 'number' || !Number.isInteger(timeline) || timeline < 1 || timeline > 0xffffffff)
    throw bad('timeline');
  const lsn = (value: unknown, field: string): Lsn => {
    if (typeof value !== 'string') throw bad(field);
    try {
      return parseLsn(value);
    } catch {
      throw bad(field);
    }
  };
  const fromLsn = lsn(from, 'from');
  if (lsn(to, 'to') <= fromLsn) throw bad('to is not after from');
  if (typeof detectedAt !== 'string' || Number.isNaN(Date.parse(detectedAt))) throw bad('detectedAt');
  if (typeof cause !== 'string' || !(WAL_GAP_CAUSES as readonly string[]).includes(cause)) throw bad('cause');
  if (slot !== undefined && typeof slot !== 'string') throw bad('slot');
  // The name carries the identity: a record copied under another name is refused.
  if (walGapKey(timeline, fromLsn) !== key) throw bad('does not match its object name');
  checkTrusted(repository, key, record);
  return record as unknown as WalGapRecord;
}

/**
 * The full backup that resolves a gap: the first completed one that started after the gap's end
 * (restores from it no longer need WAL from before the gap). Undefined while none has.
 */
export function resolvingBackup(
  gap: WalGapRecord,
  backups: readonly BackupRecord[],
): BackupRecord | undefined {
  const to = parseLsn(gap.to);
  return backups.find((b) => b.kind === 'full' && parseLsn(b.startLsn) >= to);
}

/**
 * A recorded gap as status and verify show it: `unresolved` (failing) until a full backup that
 * started after its end completed, then `resolved`; `obsolete` once retention removed all WAL
 * from before its end (nothing restorable reaches up to it any more, so it is no longer shown).
 */
export interface WalGapState extends WalGapRecord {
  state: 'unresolved' | 'resolved' | 'obsolete';
  resolvedBy?: string;
}

export function assessWalGaps(
  gaps: readonly WalGapRecord[],
  backups: readonly BackupRecord[],
  inventory: WalInventory,
): WalGapState[] {
  let oldest: Lsn | undefined;
  const note = (lsn: Lsn) => {
    if (oldest === undefined || lsn < oldest) oldest = lsn;
  };
  for (const records of inventory.segments.values()) for (const r of records) note(parseLsn(r.startLsn));
  for (const partial of inventory.partials) note(partial.startLsn);
  return gaps.map((gap) => {
    const by = resolvingBackup(gap, backups);
    const { signature: _signature, ...fields } = gap;
    if (!by) return { ...fields, state: 'unresolved' as const };
    const gone = oldest === undefined || oldest >= parseLsn(gap.to);
    return { ...fields, state: gone ? ('obsolete' as const) : ('resolved' as const), resolvedBy: by.id };
  });
}

/** `0/3000000..0/5000000 on timeline 1 (server-removed-wal, found 2026-…)`. */
export function describeGap(gap: WalGapRecord): string {
  return `WAL ${gap.from}..${gap.to} on timeline ${gap.timeline} (${gap.cause}, found ${gap.detectedAt})`;
}
