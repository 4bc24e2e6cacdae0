import { isWardenError, WardenError } from '../errors.ts';
import { acquireLock, type LockLease } from '../repository/repository-lock.ts';
import { backoffDelay, sleep } from '../util/backoff.ts';
import { signedForWrite } from '../repository/record-trust.ts';
import type { Repository } from '../repository/repository.ts';
import {
  AUDIT_HEAD_KEY,
  AUDIT_PREFIX,
  auditRecordKey,
  GENESIS,
  hashRecordBytes,
  parseAuditHead,
  parseAuditRecord,
  seqOfKey,
  type AuditEntry,
  type AuditHead,
  type AuditRecord,
} from './audit-record.ts';

/** Where the chain ends: the last record's number and hash (0 and GENESIS for an empty log). */
interface ChainEnd {
  seq: number;
  hash: string;
}

/**
 * Appends one record to the repository's audit log and signs the new head, under the
 * repository's `audit` lock so that two processes never write the same number.
 *
 * The record is created, never overwritten (`createExclusive`), and carries the hash of the
 * previous record's bytes; then `audit/head.json` (the new number and hash) is written, signed
 * when the handle holds a signing key. A process killed between the two leaves a record the head
 * does not name yet: the next append adopts it when it links to the head (it describes something
 * that happened), and refuses to go on when it does not (someone wrote into the log).
 */
export async function appendAudit(
  repository: Repository,
  entry: AuditEntry,
  now: () => Date = () => new Date(),
): Promise<AuditRecord> {
  const { store } = repository;
  const lock = await lockWaiting(repository);
  try {
    let end = await chainEnd(repository);
    for (;;) {
      const next = auditRecordKey(end.seq + 1);
      const leftover = await store.stat(next);
      if (leftover) {
        end = adoptLeftover(next, await store.getBuffer(next), end);
        continue;
      }
      const record: AuditRecord = {
        format: 1,
        seq: end.seq + 1,
        at: now().toISOString(),
        prev: end.hash,
        ...entry,
      };
      const bytes = Buffer.from(JSON.stringify(record));
      lock.assertHeld();
      if (!(await store.createExclusive(next, bytes))) continue;
      const head: AuditHead = { format: 1, seq: record.seq, hash: hashRecordBytes(bytes), at: record.at };
      lock.assertHeld();
      await store.putBuffer(
        AUDIT_HEAD_KEY,
        Buffer.from(JSON.stringify(signedForWrite(repository, AUDIT_HEAD_KEY, head))),
      );
      return record;
    }
  } finally {
    await lock.release();
  }
}

/**
 * The `audit` lock, waited for: appends are short, so another appender holds it for
 * milliseconds. Retries after 20 ms doubling to 1 s (±50 %), for up to a minute in all.
 */
async function lockWaiting(repository: Repository): Promise<LockLease> {
  const deadline = Date.now() + 60_000;
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await acquireLock(repository.store, 'audit', 'audit log append', { leaseMs: 30_000 });
    } catch (error) {
      if (!isWardenError(error, 'WARDEN_E_REPO_LOCKED') || Date.now() > deadline) throw error;
      await sleep(backoffDelay(attempt, 20, 1_000));
    }
  }
}

/** The records, oldest first, from `since` on; each parsed and checked (the chain itself: `verifyAuditLog`). */
export async function listAudit(
  repository: Repository,
  options: { since?: Date } = {},
): Promise<AuditRecord[]> {
  const records: AuditRecord[] = [];
  for (const key of await recordKeys(repository)) {
    const record = parseAuditRecord(key, await repository.store.getBuffer(key));
    if (!options.since || Date.parse(record.at) >= options.since.getTime()) records.push(record);
  }
  return records;
}

/** Record keys in sequence order (names that are not a record's are left to `verifyAuditLog`). */
export async function recordKeys(repository: Repository): Promise<string[]> {
  const keys = (await repository.store.list(AUDIT_PREFIX)).filter((key) => seqOfKey(key) !== undefined);
  return keys.sort((a, b) => seqOfKey(a)! - seqOfKey(b)!);
}

/**
 * The end to append after: the head's when it parses (no listing, however long the log), else
 * the last listed record's (a log whose first append was cut short before its head was written).
 */
async function chainEnd(repository: Repository): Promise<ChainEnd> {
  const { store } = repository;
  if (await store.stat(AUDIT_HEAD_KEY)) {
    const head = parseAuditHead(await store.getBuffer(AUDIT_HEAD_KEY));
    return { seq: head.seq, hash: head.hash };
  }
  const keys = await recordKeys(repository);
  const last = keys.at(-1);
  if (!last) return { seq: 0, hash: GENESIS };
  const bytes = await store.getBuffer(last);
  return { seq: parseAuditRecord(last, bytes).seq, hash: hashRecordBytes(bytes) };
}

function adoptLeftover(key: string, bytes: Buffer, end: ChainEnd): ChainEnd {
  const record = parseAuditRecord(key, bytes);
  if (record.prev !== end.hash) {
    throw new WardenError(
      'WARDEN_E_AUDIT_TAMPERED',
      `${key} follows no record of the audit log: it was not written by an append`,
      {
        hint: 'Someone wrote into the audit log: run `warden audit verify`, keep the repository as evidence.',
        details: { object: key },
      },
    );
  }
  return { seq: record.seq, hash: hashRecordBytes(bytes) };
}
