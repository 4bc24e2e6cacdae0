import { isWardenError } from '../errors.ts';
import { checkRecordSignature, type TrustPolicy } from '../pipeline/signing/record-signature.ts';
import type { Repository } from '../repository/repository.ts';
import { recordKeys } from './audit-log.ts';
import {
  AUDIT_HEAD_KEY,
  AUDIT_PREFIX,
  GENESIS,
  hashRecordBytes,
  parseAuditHead,
  parseAuditRecord,
  seqOfKey,
  type AuditHead,
} from './audit-record.ts';

export interface AuditProblem {
  object: string;
  problem: string;
}

export interface AuditVerifyReport {
  ok: boolean;
  records: number;
  head?: { seq: number; at: string; signedBy?: string };
  problems: AuditProblem[];
  /** Findings that are not tampering: an append cut short before its head was written. */
  notes: string[];
}

/**
 * Checks the whole audit log: every record parses and sits under its own number, the numbers run
 * 1..n without a hole (a deleted record), each record names the hash of the one before (an edited
 * or reordered record breaks the next link), and the signed head names the last record and its
 * hash (a truncated log, or records added without the signing key, do not match it). The head's
 * signature must be valid, and by a trusted key when there is a trust set (`trust`, else the
 * handle's). The signature binds the repository's system identifier, so a head copied from
 * another repository fails too.
 */
export async function verifyAuditLog(
  repository: Repository,
  trust?: TrustPolicy,
): Promise<AuditVerifyReport> {
  const { store } = repository;
  const problems: AuditProblem[] = [];
  const notes: string[] = [];
  for (const key of await store.list('audit/')) {
    if (key !== AUDIT_HEAD_KEY && !(key.startsWith(AUDIT_PREFIX) && seqOfKey(key) !== undefined))
      problems.push({
        object: key,
        problem: 'not an audit log object (written by something other than Warden)',
      });
  }
  const keys = await recordKeys(repository);
  let previous: { seq: number; hash: string } = { seq: 0, hash: GENESIS };
  for (const key of keys) {
    const bytes = await store.getBuffer(key);
    let record;
    try {
      record = parseAuditRecord(key, bytes);
    } catch (error) {
      if (!isWardenError(error, 'WARDEN_E_AUDIT_TAMPERED')) throw error;
      problems.push({ object: key, problem: error.message });
      previous = { seq: seqOfKey(key)!, hash: hashRecordBytes(bytes) };
      continue;
    }
    if (record.seq > previous.seq + 1) {
      const missing =
        record.seq === previous.seq + 2 ? `${previous.seq + 1}` : `${previous.seq + 1}..${record.seq - 1}`;
      problems.push({ object: key, problem: `record ${missing} missing before it (deleted)` });
    } else if (record.prev !== previous.hash) {
      problems.push({
        object: key,
        problem: `does not follow record ${previous.seq}: that record was edited or the order changed`,
      });
    }
    previous = { seq: record.seq, hash: hashRecordBytes(bytes) };
  }
  const head = await readHead(repository, trust ?? repository.keys.trust, problems);
  if (head) checkHeadAgainstChain(head, previous, problems, notes);
  else if (keys.length > 0 && !problems.some((p) => p.object === AUDIT_HEAD_KEY))
    problems.push({
      object: AUDIT_HEAD_KEY,
      problem: 'missing: the log has records but no signed head (deleted)',
    });
  const signedBy = head?.signature?.key;
  return {
    ok: problems.length === 0,
    records: keys.length,
    ...(head ? { head: { seq: head.seq, at: head.at, ...(signedBy ? { signedBy } : {}) } } : {}),
    problems,
    notes,
  };
}

async function readHead(
  repository: Repository,
  trust: TrustPolicy | undefined,
  problems: AuditProblem[],
): Promise<AuditHead | undefined> {
  const { store } = repository;
  if (!(await store.stat(AUDIT_HEAD_KEY))) return undefined;
  let head: AuditHead;
  try {
    head = parseAuditHead(await store.getBuffer(AUDIT_HEAD_KEY));
  } catch (error) {
    if (!isWardenError(error, 'WARDEN_E_AUDIT_TAMPERED')) throw error;
    problems.push({ object: AUDIT_HEAD_KEY, problem: error.message });
    return undefined;
  }
  const verdict = checkRecordSignature(
    head,
    { object: AUDIT_HEAD_KEY, systemId: repository.meta.systemId },
    trust?.keys ?? new Map(),
  );
  if (verdict.status === 'invalid')
    problems.push({ object: AUDIT_HEAD_KEY, problem: `signature: ${verdict.reason}` });
  else if (verdict.status === 'unsigned' && !trust?.allowUnsigned)
    problems.push({ object: AUDIT_HEAD_KEY, problem: 'not signed: truncation could not be detected' });
  else if (verdict.status === 'untrusted' && trust)
    problems.push({ object: AUDIT_HEAD_KEY, problem: `signed by ${verdict.key}, a key not trusted here` });
  return head;
}

function checkHeadAgainstChain(
  head: AuditHead,
  last: { seq: number; hash: string },
  problems: AuditProblem[],
  notes: string[],
): void {
  if (head.seq > last.seq) {
    problems.push({
      object: AUDIT_HEAD_KEY,
      problem: `names record ${head.seq} but the log ends at ${last.seq}: records were removed from its end (truncated)`,
    });
  } else if (head.seq === last.seq) {
    if (head.hash !== last.hash)
      problems.push({
        object: AUDIT_HEAD_KEY,
        problem: `record ${last.seq} differs from the one the head signed (edited)`,
      });
  } else if (last.seq === head.seq + 1) {
    // Checked link-wise above: it follows the head's record. An append killed before its head.
    notes.push(
      `record ${last.seq} is not yet under the signed head (an append was cut short; the next append adopts it)`,
    );
  } else {
    problems.push({
      object: AUDIT_HEAD_KEY,
      problem: `records ${head.seq + 1}..${last.seq} are past the signed head: added without the signing key`,
    });
  }
}
