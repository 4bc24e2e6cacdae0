import { createHash } from 'node:crypto';
import { WardenError } from '../errors.ts';
import type { RecordSignature } from '../pipeline/signing/record-signature.ts';

/** Who did it: the OS account and host of the process, and the API token's name for HTTP calls. */
export interface AuditActor {
  user: string;
  host: string;
  pid: number;
  /** The name of the API token (never its secret) when the action came through the HTTP API. */
  token?: string;
  /** HTTP calls: the caller's role (`viewer`, `operator`). */
  role?: string;
  /**
   * HTTP calls: how the caller was identified: `token`, `session`, `sign-in`, `anonymous` (no
   * tokens configured: the loopback-only API), `invalid-token`, `none` (no credentials).
   */
  via?: string;
  /** HTTP calls: the client's address. */
  remote?: string;
}

/** What an operation asks to be recorded; the log adds the sequence number, time and chain link. */
export interface AuditEntry {
  actor: AuditActor;
  /** The operation, e.g. `backup`, `restore`, `expire`, `api POST /api/jobs/backup/run`. */
  action: string;
  outcome: 'succeeded' | 'failed';
  /** The error code of a failed operation. */
  code?: string;
  /** What it acted on or produced (a backup id, a restore target), never a secret. */
  target?: string;
  durationMs?: number;
  /** HTTP calls: the status the API answered. */
  status?: number;
  /**
   * When it happened, when that is earlier than the record (`at`): an API call's record waits in
   * the daemon's outbox while the repository is unreachable.
   */
  occurredAt?: string;
}

/** One stored record, `audit/records/<seq>.json`. */
export interface AuditRecord extends AuditEntry {
  format: 1;
  seq: number;
  at: string;
  /** SHA-256 (hex) of the previous record's exact stored bytes; `GENESIS` for the first record. */
  prev: string;
}

/** `audit/head.json`: the newest record's number and hash, signed on every append. */
export interface AuditHead {
  format: 1;
  seq: number;
  hash: string;
  at: string;
  signature?: RecordSignature;
}

export const AUDIT_PREFIX = 'audit/records/';
export const AUDIT_HEAD_KEY = 'audit/head.json';
export const GENESIS = 'genesis';
const RECORD_KEY = /^audit\/records\/(\d{16})\.json$/;
const HASH = /^[0-9a-f]{64}$/;

/** Zero-padded so that listing order is sequence order, on a directory and on S3 alike. */
export function auditRecordKey(seq: number): string {
  return `${AUDIT_PREFIX}${String(seq).padStart(16, '0')}.json`;
}

/** The sequence number a record key names, or undefined for a name that is not a record's. */
export function seqOfKey(key: string): number | undefined {
  const match = RECORD_KEY.exec(key);
  return match ? Number(match[1]) : undefined;
}

export function hashRecordBytes(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function invalid(object: string, problem: string): WardenError {
  return new WardenError('WARDEN_E_AUDIT_TAMPERED', `${object} is not a valid audit record: ${problem}`, {
    hint: 'The audit log was edited or damaged: `warden audit verify` lists every break in the chain.',
    details: { object, problem },
  });
}

const OUTCOMES = new Set(['succeeded', 'failed']);

/** Parses a stored record, checking every field: the repository is untrusted. */
export function parseAuditRecord(object: string, bytes: Buffer): AuditRecord {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw invalid(object, 'not JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalid(object, 'not an object');
  const r = value as Partial<AuditRecord>;
  const actor = r.actor as Partial<AuditActor> | undefined;
  const problems: string[] = [];
  if (r.format !== 1) problems.push('format is not 1');
  if (!Number.isSafeInteger(r.seq) || (r.seq as number) < 1) problems.push('seq is not a positive integer');
  if (typeof r.at !== 'string' || !Number.isFinite(Date.parse(r.at))) problems.push('at is not a time');
  if (typeof r.prev !== 'string' || (r.prev !== GENESIS && !HASH.test(r.prev)))
    problems.push('prev is not a hash');
  if (typeof r.action !== 'string' || r.action.length === 0 || r.action.length > 200)
    problems.push('bad action');
  if (!OUTCOMES.has(r.outcome as string)) problems.push('bad outcome');
  if (
    !actor ||
    typeof actor.user !== 'string' ||
    typeof actor.host !== 'string' ||
    !Number.isSafeInteger(actor.pid) ||
    (actor.token !== undefined && typeof actor.token !== 'string') ||
    !optionalShortString(actor.role) ||
    !optionalShortString(actor.via) ||
    !optionalShortString(actor.remote)
  )
    problems.push('bad actor');
  if (r.code !== undefined && typeof r.code !== 'string') problems.push('bad code');
  if (r.target !== undefined && typeof r.target !== 'string') problems.push('bad target');
  if (r.durationMs !== undefined && !(typeof r.durationMs === 'number' && r.durationMs >= 0))
    problems.push('bad durationMs');
  if (r.status !== undefined && !(Number.isInteger(r.status) && r.status >= 100 && r.status <= 599))
    problems.push('bad status');
  if (
    r.occurredAt !== undefined &&
    !(typeof r.occurredAt === 'string' && Number.isFinite(Date.parse(r.occurredAt)))
  )
    problems.push('bad occurredAt');
  if (problems.length) throw invalid(object, problems.join('; '));
  const named = seqOfKey(object);
  if (named !== r.seq) throw invalid(object, `its seq ${r.seq} is not the one its name gives`);
  return r as AuditRecord;
}

function optionalShortString(value: unknown): boolean {
  return value === undefined || (typeof value === 'string' && value.length <= 200);
}

/** Parses the head, checking its fields (its signature is checked by the caller, against its trust). */
export function parseAuditHead(bytes: Buffer): AuditHead {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw invalid(AUDIT_HEAD_KEY, 'not JSON');
  }
  const h = (value ?? {}) as Partial<AuditHead>;
  if (
    h.format !== 1 ||
    !Number.isSafeInteger(h.seq) ||
    (h.seq as number) < 1 ||
    typeof h.hash !== 'string' ||
    !HASH.test(h.hash) ||
    typeof h.at !== 'string'
  )
    throw invalid(AUDIT_HEAD_KEY, 'malformed head');
  return h as AuditHead;
}
