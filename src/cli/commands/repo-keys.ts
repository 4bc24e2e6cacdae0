import type { SigningPublicKey } from '../../pipeline/signing/signing-keys.ts';
import { listBackups } from '../../repository/backup-catalog.ts';
import { keyUses } from '../../repository/key-uses.ts';
import { Repository } from '../../repository/repository.ts';
import { readWalInventory } from '../../repository/wal-archive.ts';
import type { CommandContext } from '../context.ts';
import { printJson, table } from '../render.ts';

/**
 * `warden repo keys`: which key each backup and each WAL range needs, whether an identity for it
 * is available on this machine (--identity, ./.warden/identity.txt, passphrase), which signing
 * key signed it and whether that key is trusted here.
 */
export async function repoKeysCommand(context: CommandContext): Promise<number> {
  const repository = await Repository.open(context.store);
  const readKeys = await context.readKeys().catch(() => undefined);
  const trusted: ReadonlyMap<string, SigningPublicKey> = readKeys?.trust?.keys ?? new Map();
  const uses = keyUses(
    repository,
    await listBackups(repository),
    await readWalInventory(repository),
    trusted,
  );
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
