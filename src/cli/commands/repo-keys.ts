import { listBackups } from '../../repository/backup-catalog.ts';
import { Repository } from '../../repository/repository.ts';
import { readWalInventory } from '../../repository/wal-archive.ts';
import type { CommandContext } from '../context.ts';
import { printJson, table } from '../render.ts';

interface KeyUse {
  what: string;
  /** `age1...` recipients; empty when stored unencrypted. */
  recipients: string[];
}

/**
 * `warden repo keys`: which key each backup and each WAL range needs, and whether an identity
 * for it is available on this machine (--identity, ./.warden/identity.txt, passphrase).
 */
export async function repoKeysCommand(context: CommandContext): Promise<number> {
  const repository = await Repository.open(context.store);
  const uses: KeyUse[] = [];
  for (const backup of await listBackups(repository))
    uses.push({
      what: `backup ${backup.id}${backup.name ? ` (${backup.name})` : ''}`,
      recipients: backup.encryption?.recipients ?? [],
    });
  const inventory = await readWalInventory(repository);
  for (const [timeline, records] of inventory.segments) {
    let start = 0;
    for (let i = 1; i <= records.length; i += 1) {
      const same =
        i < records.length &&
        (records[i]!.encryption?.recipients ?? []).join() ===
          (records[start]!.encryption?.recipients ?? []).join();
      if (same) continue;
      const first = records[start]!.segment;
      const last = records[i - 1]!.segment;
      uses.push({
        what: `WAL timeline ${timeline} ${first}${first === last ? '' : `..${last}`}`,
        recipients: records[start]!.encryption?.recipients ?? [],
      });
      start = i;
    }
  }
  const available = new Set(
    ((await context.readKeys().catch(() => ({ identities: [] }))).identities ?? []).map((i) => i.label),
  );
  const passphraseKeys = (await context.store.list('keys/')).filter((key) => key.endsWith('.age'));
  const rows = uses.map((use) => ({
    ...use,
    availableHere: use.recipients.length === 0 || use.recipients.some((r) => available.has(r)),
  }));
  if (context.json) {
    printJson({ repository: repository.location, uses: rows, passphraseKeys });
    return 0;
  }
  process.stdout.write(`repository ${repository.location}\n\n`);
  process.stdout.write(
    `${table(
      ['OBJECTS', 'ENCRYPTED TO', 'KEY HERE'],
      rows.map((row) => [
        row.what,
        row.recipients.length ? row.recipients.join(', ') : 'not encrypted',
        row.recipients.length === 0 ? '-' : row.availableHere ? 'yes' : 'no',
      ]),
    )}\n`,
  );
  if (passphraseKeys.length)
    process.stdout.write(
      `\npassphrase-protected keys in the repository: ${passphraseKeys.join(', ')} (open with --passphrase-file)\n`,
    );
  return 0;
}
