import { AUDIT_HEAD_KEY, AUDIT_PREFIX } from '../audit/audit-record.ts';
import type { ObjectStore } from '../repository/object-store.ts';

/**
 * The audit log as it is (records are hash-chained and the head is signed, so the copy verifies
 * on its own with `warden audit verify`): the head is read first, so every record it names is
 * already in the source; the records the target lacks are copied, then the head, last.
 */
export async function copyAuditLog(from: ObjectStore, to: ObjectStore): Promise<number> {
  if (!(await from.stat(AUDIT_HEAD_KEY))) return 0;
  const head = await from.getBuffer(AUDIT_HEAD_KEY);
  const present = new Set(await to.list('audit/'));
  let copied = 0;
  for (const key of await from.list(AUDIT_PREFIX)) {
    if (present.has(key)) continue;
    await to.putBuffer(key, await from.getBuffer(key));
    copied += 1;
  }
  const theirs = present.has(AUDIT_HEAD_KEY) ? await to.getBuffer(AUDIT_HEAD_KEY) : undefined;
  if (!theirs?.equals(head)) await to.putBuffer(AUDIT_HEAD_KEY, head);
  return copied;
}
