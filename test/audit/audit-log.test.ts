import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { appendAudit, listAudit } from '../../src/audit/audit-log.ts';
import { auditRecordKey, AUDIT_HEAD_KEY, type AuditEntry } from '../../src/audit/audit-record.ts';
import { verifyAuditLog } from '../../src/audit/audit-verify.ts';
import { isWardenError } from '../../src/errors.ts';
import { SigningKey } from '../../src/pipeline/signing/signing-keys.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import type { ObjectStore } from '../../src/repository/object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { tempDir } from '../harness/temp-dir.ts';

const signer = SigningKey.generate();
const cluster = { systemId: '7300000000000000001', walSegmentSize: 16 << 20, serverVersion: '15.0' };

function entry(action: string, outcome: AuditEntry['outcome'] = 'succeeded'): AuditEntry {
  return {
    actor: { user: 'ops', host: 'db-backup-1', pid: 4242 },
    action,
    outcome,
    target: `${action}-target`,
  };
}

/** A repository with `count` appended records; `reader` checks with the signer trusted. */
async function logWith(
  count: number,
): Promise<{ store: ObjectStore; writer: Repository; reader: Repository }> {
  const store = new FsObjectStore(await tempDir('audit'));
  const writer = await Repository.openFor(store, cluster, { signingKey: signer });
  for (let i = 1; i <= count; i += 1) await appendAudit(writer, entry(`action-${i}`));
  const reader = await Repository.open(store, { trust: { keys: new Map([[signer.id, signer.publicKey]]) } });
  return { store, writer, reader };
}

async function problems(reader: Repository): Promise<string[]> {
  const report = await verifyAuditLog(reader);
  assert.equal(report.ok, report.problems.length === 0);
  return report.problems.map((p) => `${p.object}: ${p.problem}`);
}

describe('audit log', () => {
  test('appends chain each record to the one before and an intact log verifies', async () => {
    const { reader } = await logWith(4);
    const records = await listAudit(reader);
    assert.deepEqual(
      records.map((r) => [r.seq, r.action]),
      [
        [1, 'action-1'],
        [2, 'action-2'],
        [3, 'action-3'],
        [4, 'action-4'],
      ],
    );
    assert.equal(records[0]!.prev, 'genesis');
    const report = await verifyAuditLog(reader);
    assert.deepEqual(report.problems, []);
    assert.equal(report.records, 4);
    assert.equal(report.head?.seq, 4);
    assert.equal(report.head?.signedBy, signer.id);
  });

  test('concurrent appends from several handles get distinct numbers and one unbroken chain', async () => {
    const { store, reader } = await logWith(0);
    const writers = await Promise.all([0, 1, 2].map(() => Repository.open(store, { signingKey: signer })));
    await Promise.all(writers.flatMap((w, i) => [0, 1, 2].map((j) => appendAudit(w, entry(`w${i}-${j}`)))));
    const records = await listAudit(reader);
    assert.deepEqual(
      records.map((r) => r.seq),
      [1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    assert.deepEqual(await problems(reader), []);
  });

  test('an edited record is detected', async () => {
    const { store, reader } = await logWith(4);
    const key = auditRecordKey(2);
    const edited = JSON.parse((await store.getBuffer(key)).toString()) as { outcome: string };
    edited.outcome = 'failed';
    await store.putBuffer(key, Buffer.from(JSON.stringify(edited)));
    assert.deepEqual(await problems(reader), [
      `${auditRecordKey(3)}: does not follow record 2: that record was edited or the order changed`,
    ]);
  });

  test('an edit of the last record is caught by the signed head', async () => {
    const { store, reader } = await logWith(3);
    const key = auditRecordKey(3);
    const edited = JSON.parse((await store.getBuffer(key)).toString()) as { target: string };
    edited.target = 'something else';
    await store.putBuffer(key, Buffer.from(JSON.stringify(edited)));
    assert.deepEqual(await problems(reader), [
      `${AUDIT_HEAD_KEY}: record 3 differs from the one the head signed (edited)`,
    ]);
  });

  test('a deleted record is detected', async () => {
    const { store, reader } = await logWith(5);
    await store.delete(auditRecordKey(3));
    assert.deepEqual(await problems(reader), [`${auditRecordKey(4)}: record 3 missing before it (deleted)`]);
  });

  test('reordered records are detected, also when their numbers are rewritten to match', async () => {
    const { store, reader } = await logWith(4);
    const [two, three] = await Promise.all([
      store.getBuffer(auditRecordKey(2)),
      store.getBuffer(auditRecordKey(3)),
    ]);
    await store.putBuffer(auditRecordKey(2), three);
    await store.putBuffer(auditRecordKey(3), two);
    const swapped = await problems(reader);
    for (const seq of [2, 3])
      assert.ok(
        swapped.some(
          (p) => p.startsWith(`${auditRecordKey(seq)}: `) && p.includes('not the one its name gives'),
        ),
        swapped.join('\n'),
      );

    const renumber = (bytes: Buffer, seq: number) => {
      const record = JSON.parse(bytes.toString()) as { seq: number };
      record.seq = seq;
      return Buffer.from(JSON.stringify(record));
    };
    await store.putBuffer(auditRecordKey(2), renumber(three, 2));
    await store.putBuffer(auditRecordKey(3), renumber(two, 3));
    const renumbered = await problems(reader);
    assert.ok(
      renumbered.some((p) => p.startsWith(`${auditRecordKey(2)}: does not follow record 1`)),
      renumbered.join('\n'),
    );
  });

  test('a truncated log is detected, and so is a head rewritten without the signing key', async () => {
    const { store, reader } = await logWith(4);
    const head = await store.getBuffer(AUDIT_HEAD_KEY);
    await store.delete(auditRecordKey(4));
    assert.deepEqual(await problems(reader), [
      `${AUDIT_HEAD_KEY}: names record 4 but the log ends at 3: records were removed from its end (truncated)`,
    ]);
    // Moving the head back to record 3 needs a signature the attacker cannot make.
    const forged = JSON.parse(head.toString()) as { seq: number };
    forged.seq = 3;
    await store.putBuffer(AUDIT_HEAD_KEY, Buffer.from(JSON.stringify(forged)));
    const found = await problems(reader);
    assert.ok(
      found.some((p) => p.startsWith(`${AUDIT_HEAD_KEY}: signature: the signature does not match`)),
      found.join('\n'),
    );
    await store.delete(AUDIT_HEAD_KEY);
    assert.deepEqual(await problems(reader), [
      `${AUDIT_HEAD_KEY}: missing: the log has records but no signed head (deleted)`,
    ]);
  });

  test('an append cut short before its head is adopted by the next append; a foreign record is refused', async () => {
    const { store, writer, reader } = await logWith(2);
    const head = await store.getBuffer(AUDIT_HEAD_KEY);
    await appendAudit(writer, entry('cut-short'));
    // As if the process died after creating record 3 and before writing the head.
    await store.putBuffer(AUDIT_HEAD_KEY, head);
    const report = await verifyAuditLog(reader);
    assert.deepEqual(report.problems, []);
    assert.equal(report.notes.length, 1);
    const next = await appendAudit(writer, entry('after'));
    assert.equal(next.seq, 4);
    assert.deepEqual(await problems(reader), []);

    await store.putBuffer(
      auditRecordKey(5),
      Buffer.from(JSON.stringify({ ...(await listAudit(reader))[0], seq: 5, action: 'planted' })),
    );
    await assert.rejects(appendAudit(writer, entry('refused')), (error) =>
      isWardenError(error, 'WARDEN_E_AUDIT_TAMPERED'),
    );
  });

  test('an object that is not a record, and a record under the wrong name, are reported', async () => {
    const { store, reader } = await logWith(1);
    await store.putBuffer('audit/records/notes.txt', Buffer.from('hello'));
    const found = await problems(reader);
    assert.deepEqual(found, [
      'audit/records/notes.txt: not an audit log object (written by something other than Warden)',
    ]);
  });

  test('listAudit keeps records from `since` on', async () => {
    const { store } = await logWith(0);
    const writer = await Repository.open(store, { signingKey: signer });
    const times = ['2026-12-01T00:00:00.000Z', '2026-12-02T00:00:00.000Z', '2026-12-03T00:00:00.000Z'];
    for (const at of times) await appendAudit(writer, entry(at), () => new Date(at));
    const since = await listAudit(writer, { since: new Date('2026-12-02T00:00:00.000Z') });
    assert.deepEqual(
      since.map((r) => r.action),
      times.slice(1),
    );
  });
});
