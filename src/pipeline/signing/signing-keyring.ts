import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SigningConfig } from '../../config/signing-config.ts';
import { WardenError } from '../../errors.ts';
import type { TrustPolicy } from './record-signature.ts';
import {
  parseSigningKeys,
  parseSigningPublicKeys,
  SigningKey,
  signingKeyFileText,
  type SigningPublicKey,
} from './signing-keys.ts';

async function readKeys<T>(file: string, what: string, parse: (text: string) => T[]): Promise<T[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${what} ${file} cannot be read`, {
      hint: 'Create a signing key with `warden repo keygen --signing -o FILE`.',
      details: { file },
      cause,
    });
  }
  try {
    const keys = parse(text);
    if (keys.length === 0) throw new Error('no key in it');
    return keys;
  } catch (cause) {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${what} ${file}: ${(cause as Error).message}`, {
      details: { file },
      cause,
    });
  }
}

export async function readSigningKeyFile(file: string): Promise<SigningKey> {
  return (await readKeys(file, 'signing key file', parseSigningKeys))[0]!;
}

/** Writes a new signing key file (mode 0600, never over an existing file). */
export async function writeSigningKeyFile(file: string, key: SigningKey): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, signingKeyFileText(key), { mode: 0o600, flag: 'wx' });
}

/**
 * The key writers sign with: the configured key file (which must exist), else the default one,
 * created on first use (`created` tells the caller to show its public key once).
 */
export async function loadSigningKey(
  config: SigningConfig,
): Promise<{ key: SigningKey; file: string; created: boolean }> {
  if (config.keyFile)
    return { key: await readSigningKeyFile(config.keyFile), file: config.keyFile, created: false };
  const file = config.defaultKeyFile;
  if (existsSync(file)) return { key: await readSigningKeyFile(file), file, created: false };
  const key = SigningKey.generate();
  try {
    await writeSigningKeyFile(file, key);
  } catch (error) {
    // Another process created it first: use theirs.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST')
      return { key: await readSigningKeyFile(file), file, created: false };
    throw error;
  }
  return { key, file, created: true };
}

/**
 * The keys a reader trusts, all from outside the repository: the local signing key's public half
 * (when its file exists), the configured trusted keys and the keys in the trusted-keys files.
 */
export async function loadTrust(
  config: SigningConfig,
  onUnsigned?: (object: string) => void,
): Promise<TrustPolicy> {
  const keys = new Map<string, SigningPublicKey>();
  const own = config.keyFile ?? (existsSync(config.defaultKeyFile) ? config.defaultKeyFile : undefined);
  if (own) {
    const key = await readSigningKeyFile(own);
    keys.set(key.id, key.publicKey);
  }
  for (const text of config.trustedKeys) {
    const [key] = parseSigningPublicKeys(text);
    keys.set(key!.id, key!);
  }
  for (const file of config.trustedKeysFiles)
    for (const key of await readKeys(file, 'trusted keys file', parseSigningPublicKeys))
      keys.set(key.id, key);
  return { keys, allowUnsigned: config.allowUnsigned, ...(onUnsigned ? { onUnsigned } : {}) };
}
