import { checkRecordSignature, type SignatureVerdict } from '../../pipeline/signing/record-signature.ts';
import type { SigningPublicKey } from '../../pipeline/signing/signing-keys.ts';
import { backupRecordKey, listBackups } from '../../repository/backup-catalog.ts';
import { Repository } from '../../repository/repository.ts';
import { readWalInventory, segmentRecordKey } from '../../repository/wal-archive.ts';
import type { CommandContext } from '../context.ts';
import { printJson, table } from '../render.ts';

interface KeyUse {
  what: string;
  /** `age1...` recipients; empty when stored unencrypted. */
  recipients: string[];
  /** The signing key (`wardensig1...`), absent when unsigned. */
  signedBy?: string;
  /** `trusted`, `untrusted` (a key not trusted here), `unsigned` or `invalid`. */
  signature: SignatureVerdict['status'];
}

/**
 * `warden repo keys`: which key each backup and each WAL range needs, whether an identity for it
 * is available on this machine (--identity, ./.warden/identity.txt, passphrase), which signing
 * key signed it and whether that key is trusted here.
 */
export async function repoKeysCommand(context: CommandContext): Promise<number> {
  const repository = await Repository.open(context.store);
  const readKeys = await context.readKeys().catch(() => undefined);
  const trusted: ReadonlyMap<string, SigningPublicKey> = readKeys?.trust?.keys ?? new Map();
  const signature = (object: string, record: unknown): Pick<KeyUse, 'signedBy' | 'signature'> => {
    const verdict = checkRecordSignature(record, { object, systemId: repository.meta.systemId }, trusted);
    return {
      signature: verdict.status,
      ...('key' in verdict && verdict.key ? { signedBy: verdict.key } : {}),
    };
  };
  const uses: KeyUse[] = [];
  for (const backup of await listBackups(repository))
    uses.push({
      what: `backup ${backup.id}${backup.name ? ` (${backup.name})` : ''}`,
      recipients: backup.encryption?.recipients ?? [],
      ...signature(backupRecordKey(backup.id), backup),
    });
  const inventory = await readWalInventory(repository);
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
  const available = new Set((readKeys?.identities ?? []).map((i) => i.label));
  const passphraseKeys = (await context.store.list('keys/')).filter((key) => key.endsWith('.age'));
  const rows = uses.map((use) => ({
    ...use,
    availableHere: use.recipients.length === 0 || use.recipients.some((r) => available.has(r)),
  }));
  const signingKeys = [...new Set(uses.flatMap((use) => (use.signedBy ? [use.signedBy] : [])))].map(
    (key) => ({ key, trustedHere: trusted.has(key) }),
  );
  if (context.json) {
    printJson({ repository: repository.location, uses: rows, passphraseKeys, signingKeys });
    return 0;
  }
  process.stdout.write(`repository ${repository.location}\n\n`);
  process.stdout.write(
    `${table(
      ['OBJECTS', 'ENCRYPTED TO', 'KEY HERE', 'SIGNED BY', 'SIGNATURE'],
      rows.map((row) => [
        row.what,
        row.recipients.length ? row.recipients.join(', ') : 'not encrypted',
        row.recipients.length === 0 ? '-' : row.availableHere ? 'yes' : 'no',
        row.signedBy ?? '-',
        row.signature,
      ]),
    )}\n`,
  );
  if (signingKeys.length) {
    process.stdout.write('\nsigning keys:\n');
    for (const { key, trustedHere } of signingKeys)
      process.stdout.write(
        `  ${key} ${trustedHere ? 'trusted here' : 'NOT trusted here (--trust-key to accept)'}\n`,
      );
  }
  if (passphraseKeys.length)
    process.stdout.write(
      `\npassphrase-protected keys in the repository: ${passphraseKeys.join(', ')} (open with --passphrase-file)\n`,
    );
  return 0;
}
