import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { EncryptionConfig } from '../config/encryption-config.ts';
import { isWardenError, toWardenError } from '../errors.ts';
import type { AgeRecipient } from '../pipeline/encryption/age-keys.ts';
import { decryptBuffer, encryptBuffer } from '../pipeline/encryption/age-stream.ts';
import { loadReadKeys, loadWriteKeys } from '../pipeline/encryption/keyring.ts';
import { readKeyFile } from '../pipeline/key-file.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { fail, failFrom, ok, skip, warn, type CheckResult } from './check-result.ts';

const ENCRYPT = 'encryption';
const DECRYPT = 'decryption';

/**
 * Key availability, as two lines: `encryption` — new objects can be encrypted (the configured
 * recipients parse, a small value encrypts to them); `decryption` — when an identity is here,
 * that value decrypts with it (so what is written now can be restored with the keys at hand).
 * Nothing is written: in passphrase mode a repository without its key yet is left for the first
 * writer to create it (the WAL round trip is one).
 */
export async function checkKeys(config: EncryptionConfig, store: ObjectStore): Promise<CheckResult[]> {
  if (config.mode === 'none')
    return [
      ok(
        ENCRYPT,
        'off: objects are stored unencrypted (chosen with --no-encryption or encryption.mode: none)',
      ),
      skip(DECRYPT, 'encryption is off'),
    ];
  let recipients: readonly AgeRecipient[];
  if (config.passphraseFile && !(await passphraseKeyExists(store))) {
    try {
      // The passphrase must be readable; the repository key it will protect does not exist yet.
      await readKeyFile(config.passphraseFile, 'passphrase file', (text) => text.split('\n').filter(Boolean));
    } catch (error) {
      return [failFrom(ENCRYPT, error), skip(DECRYPT, 'no key to decrypt with')];
    }
    return [
      ok(
        ENCRYPT,
        `passphrase mode (${path.basename(config.passphraseFile)}): the repository key does not exist yet; the first writer creates it`,
      ),
      skip(DECRYPT, 'the repository key does not exist yet'),
    ];
  }
  try {
    // A passphrase that opens none of the repository's keys would make writers create another
    // key: refuse it here instead (loadReadKeys creates nothing).
    if (config.passphraseFile) await loadReadKeys(config, store);
    recipients = (await loadWriteKeys(config, store)).recipients ?? [];
  } catch (error) {
    return [failFrom(ENCRYPT, error), skip(DECRYPT, 'nothing to decrypt: encryption failed')];
  }
  const value = randomBytes(32);
  const sealed = await encryptBuffer(value, recipients);
  const labels = recipients.map((r) => r.label);
  const encrypted = ok(ENCRYPT, `new objects are encrypted to ${labels.join(', ')}`, { recipients: labels });
  return [encrypted, await decryption(config, store, sealed, value, labels)];
}

async function decryption(
  config: EncryptionConfig,
  store: ObjectStore,
  sealed: Buffer,
  value: Buffer,
  labels: string[],
): Promise<CheckResult> {
  const explicit = config.identityFiles.length > 0 || config.passphraseFile !== undefined;
  let identities;
  try {
    identities = (await loadReadKeys(config, store)).identities ?? [];
  } catch (error) {
    const wrapped = toWardenError(error);
    if (wrapped.code === 'WARDEN_E_CONFIG_INVALID' && wrapped.details.file)
      return fail(DECRYPT, 'WARDEN_E_KEY_MISSING', `identity: ${wrapped.message}`, {
        fix: 'Give the identity file restores need (--identity FILE, repository.encryption.identityFile), or remove the setting.',
        details: wrapped.details,
      });
    return failFrom(DECRYPT, wrapped);
  }
  if (identities.length === 0)
    return skip(
      DECRYPT,
      `no identity here to test with; restores need the identity of ${labels.join(' or ')} (keep it away from this host)`,
    );
  try {
    const opened = await decryptBuffer(sealed, { identities, object: 'the check value' });
    if (!opened.equals(value)) throw new Error('decrypted value differs');
    const used = identities.filter((i) => labels.includes(i.label)).map((i) => i.label);
    return ok(
      DECRYPT,
      `a value encrypted now decrypts with the identity here (${used.join(', ') || 'passphrase'})`,
    );
  } catch (error) {
    if (!isWardenError(error, 'WARDEN_E_KEY_MISMATCH')) throw error;
    const text = `the identity here (${identities.map((i) => i.label).join(', ')}) cannot decrypt what is encrypted now (to ${labels.join(', ')})`;
    const fix =
      'Give the identity of one of the recipients (--identity FILE), or encrypt to the recipient of this identity.';
    return explicit
      ? fail(DECRYPT, 'WARDEN_E_KEY_MISMATCH', text, { fix })
      : warn(DECRYPT, `${text}; restores need another key`, { fix });
  }
}

async function passphraseKeyExists(store: ObjectStore): Promise<boolean> {
  try {
    return (await store.list('keys/')).some((key) => key.endsWith('.age'));
  } catch {
    return false; // an unreachable store shows in the repository check
  }
}
