import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { EncryptionConfig } from '../../config/encryption-config.ts';
import { WardenError, isWardenError } from '../../errors.ts';
import type { ObjectStore } from '../../repository/object-store.ts';
import {
  parseIdentities,
  parseRecipients,
  ScryptIdentity,
  ScryptRecipient,
  X25519Identity,
  type AgeRecipient,
} from './age-keys.ts';
import { decryptBuffer, encryptBuffer } from './age-stream.ts';
import type { RepositoryKeys } from './repository-keys.ts';
import { readKeyFile } from '../key-file.ts';

/** Passphrase mode keeps an X25519 identity in the repository, encrypted with the passphrase. */
const KEYS_PREFIX = 'keys/';

/** An age-keygen style identity file: creation time, public key, secret key. */
export function identityFileText(identity: X25519Identity, now = new Date()): string {
  return `# created: ${now.toISOString()}\n# public key: ${identity.label}\n${identity.encode()}\n`;
}

/** Creates an identity file (mode 0600) unless one exists; returns its identity. */
export async function ensureIdentityFile(
  file: string,
): Promise<{ identity: X25519Identity; created: boolean }> {
  if (existsSync(file)) return { identity: (await readIdentityFile(file))[0]!, created: false };
  const identity = X25519Identity.generate();
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, identityFileText(identity), { mode: 0o600, flag: 'wx' });
  return { identity, created: true };
}

export function readIdentityFile(file: string): Promise<X25519Identity[]> {
  return readKeyFile(file, 'identity file', parseIdentities);
}

async function readPassphrase(file: string): Promise<string> {
  const [line] = await readKeyFile(file, 'passphrase file', (text) =>
    text.split('\n').filter((l) => l.length > 0),
  );
  return line!;
}

/**
 * The X25519 identities stored under `keys/` that this passphrase opens (each is one scrypt
 * derivation, once per process). With `create`, makes one when none opens with it.
 */
async function passphraseIdentities(
  store: ObjectStore,
  passphrase: string,
  create: boolean,
): Promise<X25519Identity[]> {
  const found: X25519Identity[] = [];
  for (const key of await store.list(KEYS_PREFIX)) {
    if (!key.endsWith('.age')) continue;
    try {
      const text = await decryptBuffer(await store.getBuffer(key), {
        identities: [new ScryptIdentity(passphrase)],
        object: key,
      });
      found.push(...parseIdentities(text.toString('utf8')));
    } catch (error) {
      // a key file for another passphrase (after a passphrase change) is not ours
      if (!isWardenError(error, 'WARDEN_E_KEY_MISMATCH')) throw error;
    }
  }
  if (found.length === 0 && create) {
    const identity = X25519Identity.generate();
    const wrapped = await encryptBuffer(Buffer.from(identityFileText(identity)), [
      new ScryptRecipient(passphrase),
    ]);
    await store.createExclusive(`${KEYS_PREFIX}${identity.label}.age`, wrapped);
    found.push(identity);
  }
  return found;
}

function noRecipient(config: EncryptionConfig): WardenError {
  return new WardenError(
    'WARDEN_E_KEY_MISSING',
    'encryption is on for repositories and no recipient is configured',
    {
      hint:
        `Create a key with \`warden repo keygen -o ${path.relative(process.cwd(), config.defaultIdentityFile)}\` ` +
        '(then keep a copy of that file away from this machine: restores need it), or pass ' +
        '--recipient age1... / --recipients-file F / --passphrase-file F, or choose --no-encryption explicitly.',
      details: { field: 'repository.encryption.recipients' },
    },
  );
}

/**
 * The recipients new objects are encrypted to, from the configuration. An empty object means
 * no encryption, which only `mode: none` (`--no-encryption`) gives.
 */
export async function loadWriteKeys(config: EncryptionConfig, store: ObjectStore): Promise<RepositoryKeys> {
  if (config.mode === 'none') return {};
  const recipients: AgeRecipient[] = [];
  if (config.passphraseFile) {
    const passphrase = await readPassphrase(config.passphraseFile);
    const [identity] = await passphraseIdentities(store, passphrase, true);
    recipients.push(identity!.recipient);
  }
  recipients.push(...config.recipients.map((text) => parseRecipients(text)[0]!));
  for (const file of config.recipientsFiles)
    recipients.push(...(await readKeyFile(file, 'recipients file', parseRecipients)));
  if (recipients.length === 0) {
    const files = config.identityFiles.length
      ? config.identityFiles
      : existsSync(config.defaultIdentityFile)
        ? [config.defaultIdentityFile]
        : [];
    for (const file of files) recipients.push(...(await readIdentityFile(file)).map((i) => i.recipient));
  }
  if (recipients.length === 0) throw noRecipient(config);
  return { recipients };
}

/** The identities stored objects are decrypted with: identity files, the default one, the passphrase. */
export async function loadReadKeys(config: EncryptionConfig, store: ObjectStore): Promise<RepositoryKeys> {
  const identities = [];
  const files = [...config.identityFiles];
  if (existsSync(config.defaultIdentityFile) && !files.includes(config.defaultIdentityFile))
    files.push(config.defaultIdentityFile);
  for (const file of files) identities.push(...(await readIdentityFile(file)));
  if (config.passphraseFile) {
    const found = await passphraseIdentities(store, await readPassphrase(config.passphraseFile), false);
    if (found.length === 0)
      throw new WardenError(
        'WARDEN_E_KEY_MISMATCH',
        `the passphrase opens none of the keys in ${KEYS_PREFIX}`,
        {
          hint: 'Check the passphrase file; `warden repo keys` lists which key each backup needs.',
          details: { passphraseFile: config.passphraseFile },
        },
      );
    identities.push(...found);
  }
  return { identities };
}
