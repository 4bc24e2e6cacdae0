import path from 'node:path';
import { z } from 'zod';
import { WardenError } from '../errors.ts';
import { X25519Recipient } from '../pipeline/encryption/age-keys.ts';

/** Where `warden repo keygen -o` and the embedded default keep the identity (mode 0600). */
export const DEFAULT_IDENTITY_FILE = '.warden/identity.txt';

/** `repository.encryption` in warden.yaml. */
export const encryptionSchema = z
  .object({
    mode: z.enum(['age', 'none']).optional(),
    recipients: z.array(z.string()).optional(),
    recipientsFile: z.string().optional(),
    identityFile: z.string().optional(),
    passphraseFile: z.string().optional(),
  })
  .strict();

export type EncryptionFileSection = z.infer<typeof encryptionSchema>;

/**
 * Resolved encryption settings. `mode: 'age'` is the default: objects are encrypted to
 * `recipients` (plus those in `recipientsFiles`), or to the passphrase-protected repository key
 * when `passphraseFile` is set, or to the identity in `defaultIdentityFile` when it exists.
 */
export interface EncryptionConfig {
  mode: 'age' | 'none';
  recipients: string[];
  recipientsFiles: string[];
  identityFiles: string[];
  passphraseFile?: string;
  defaultIdentityFile: string;
}

export interface EncryptionFlags {
  /** false from `--no-encryption`. */
  encryption?: boolean;
  recipient?: string[];
  recipientsFile?: string;
  identity?: string[];
  passphraseFile?: string;
}

/** Precedence: flag > environment > config file > default (age, no keys named yet). */
export function resolveEncryption(
  flags: EncryptionFlags,
  env: NodeJS.ProcessEnv,
  file: EncryptionFileSection | undefined,
  fileDir: string,
  cwd: string,
): EncryptionConfig {
  const fromFile = (p: string | undefined) => (p ? [path.resolve(fileDir, p)] : []);
  const fromCwd = (p: string | undefined) => (p ? [path.resolve(cwd, p)] : []);
  const envMode = env.WARDEN_ENCRYPTION;
  if (envMode !== undefined && envMode !== 'age' && envMode !== 'none')
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `WARDEN_ENCRYPTION: "${envMode}" is not age or none`, {
      details: { field: 'repository.encryption.mode' },
    });
  const mode = flags.encryption === false ? 'none' : (envMode ?? file?.mode ?? 'age');
  const recipients = flags.recipient?.length
    ? flags.recipient
    : env.WARDEN_RECIPIENTS
      ? env.WARDEN_RECIPIENTS.split(/[\s,]+/).filter(Boolean)
      : (file?.recipients ?? []);
  recipients.forEach((text, i) => {
    try {
      X25519Recipient.parse(text);
    } catch (cause) {
      throw new WardenError(
        'WARDEN_E_CONFIG_INVALID',
        `repository.encryption.recipients[${i}]: "${text}" is not an age recipient (age1...): ${(cause as Error).message}`,
        { details: { field: `repository.encryption.recipients[${i}]` }, cause },
      );
    }
  });
  const passphraseFile = flags.passphraseFile
    ? fromCwd(flags.passphraseFile)[0]
    : env.WARDEN_PASSPHRASE_FILE
      ? fromCwd(env.WARDEN_PASSPHRASE_FILE)[0]
      : fromFile(file?.passphraseFile)[0];
  return {
    mode,
    recipients,
    recipientsFiles: flags.recipientsFile ? fromCwd(flags.recipientsFile) : fromFile(file?.recipientsFile),
    identityFiles: flags.identity?.length
      ? flags.identity.flatMap(fromCwd)
      : env.WARDEN_IDENTITY_FILE
        ? fromCwd(env.WARDEN_IDENTITY_FILE)
        : fromFile(file?.identityFile),
    ...(passphraseFile ? { passphraseFile } : {}),
    defaultIdentityFile: path.resolve(cwd, DEFAULT_IDENTITY_FILE),
  };
}
