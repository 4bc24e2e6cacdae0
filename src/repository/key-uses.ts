import { checkRecordSignature, type SignatureVerdict } from '../pipeline/signing/record-signature.ts';
import type { SigningPublicKey } from '../pipeline/signing/signing-keys.ts';
import { backupRecordKey, type BackupRecord } from './backup-catalog.ts';
import type { Repository } from './repository.ts';
import { segmentRecordKey, type WalInventory } from './wal-archive.ts';

/** Which keys one backup, or one run of WAL segments stored alike, needs and was signed with. */
export interface KeyUse {
  what: string;
  /** `age1...` recipients; empty when stored unencrypted. */
  recipients: string[];
  /** The signing key (`wardensig1...`), absent when unsigned. */
  signedBy?: string;
  /** `trusted`, `untrusted` (a key not trusted here), `unsigned` or `invalid`. */
  signature: SignatureVerdict['status'];
}

/**
 * Key uses of a repository's backups and WAL (consecutive segments with the same recipients and
 * signature grouped into one range), each signature checked against `trusted`.
 */
export function keyUses(
  repository: Repository,
  backups: readonly BackupRecord[],
  inventory: WalInventory,
  trusted: ReadonlyMap<string, SigningPublicKey>,
): KeyUse[] {
  const signature = (object: string, record: unknown): Pick<KeyUse, 'signedBy' | 'signature'> => {
    const verdict = checkRecordSignature(record, { object, systemId: repository.meta.systemId }, trusted);
    return {
      signature: verdict.status,
      ...('key' in verdict && verdict.key ? { signedBy: verdict.key } : {}),
    };
  };
  const uses: KeyUse[] = [];
  for (const backup of backups)
    uses.push({
      what: `backup ${backup.id}${backup.name ? ` (${backup.name})` : ''}`,
      recipients: backup.encryption?.recipients ?? [],
      ...signature(backupRecordKey(backup.id), backup),
    });
  for (const [timeline, records] of inventory.segments) {
    const described = records.map((record) => ({
      record,
      recipients: record.encryption?.recipients ?? [],
      ...signature(segmentRecordKey(record.timeline, record.segment), record),
    }));
    const group = (d: (typeof described)[number]) =>
      `${d.recipients.join()}|${d.signedBy ?? ''}|${d.signature}`;
    let start = 0;
    for (let i = 1; i <= described.length; i += 1) {
      if (i < described.length && group(described[i]!) === group(described[start]!)) continue;
      const first = described[start]!;
      const last = described[i - 1]!.record.segment;
      uses.push({
        what: `WAL timeline ${timeline} ${first.record.segment}${first.record.segment === last ? '' : `..${last}`}`,
        recipients: first.recipients,
        signature: first.signature,
        ...(first.signedBy ? { signedBy: first.signedBy } : {}),
      });
      start = i;
    }
  }
  return uses;
}
