import path from 'node:path';
import { z } from 'zod';
import { WardenError } from '../errors.ts';
import { SigningPublicKey } from '../pipeline/signing/signing-keys.ts';

/** Where writers keep the signing key when none is configured (mode 0600, beside identity.txt). */
export const DEFAULT_SIGNING_KEY_FILE = '.warden/signing-key';

/** `repository.signing` in warden.yaml. */
export const signingSchema = z
  .object({
    keyFile: z.string().optional(),
    trustedKeys: z.array(z.string()).optional(),
    trustedKeysFile: z.string().optional(),
    allowUnsigned: z.boolean().optional(),
  })
  .strict();

export type SigningFileSection = z.infer<typeof signingSchema>;

/**
 * Resolved signing settings. Writers sign with `keyFile` (else `defaultKeyFile`, created on
 * first use); readers trust that key's public half plus `trustedKeys` and the keys listed in
 * `trustedKeysFiles`, and nothing the repository itself names.
 */
export interface SigningConfig {
  /** A configured key file (must exist); undefined: `defaultKeyFile`. */
  keyFile?: string;
  defaultKeyFile: string;
  /** `wardensig1...` public keys, validated. */
  trustedKeys: string[];
  trustedKeysFiles: string[];
  /** Accept unsigned records (repositories written before signing) with a warning. */
  allowUnsigned: boolean;
}

export interface SigningFlags {
  signingKey?: string;
  /** `--trust-key`, repeatable. */
  trustKey?: string[];
  trustedKeysFile?: string;
  allowUnsigned?: boolean;
}

/**
 * Key file: flag > WARDEN_SIGNING_KEY_FILE > config > default. Trusted keys add up from every
 * source (flags, WARDEN_TRUSTED_KEYS, config): trusting one more key is always explicit, and a
 * rotation keeps the old key in the config while a command line adds another.
 */
export function resolveSigning(
  flags: SigningFlags,
  env: NodeJS.ProcessEnv,
  file: SigningFileSection | undefined,
  fileDir: string,
  cwd: string,
): SigningConfig {
  const keyFile = flags.signingKey
    ? path.resolve(cwd, flags.signingKey)
    : env.WARDEN_SIGNING_KEY_FILE
      ? path.resolve(cwd, env.WARDEN_SIGNING_KEY_FILE)
      : file?.keyFile
        ? path.resolve(fileDir, file.keyFile)
        : undefined;
  const listed: Array<{ text: string; field: string }> = [
    ...(flags.trustKey ?? []).map((text) => ({ text, field: '--trust-key' })),
    ...(env.WARDEN_TRUSTED_KEYS ?? '')
      .split(/[\s,]+/)
      .filter(Boolean)
      .map((text) => ({ text, field: 'WARDEN_TRUSTED_KEYS' })),
    ...(file?.trustedKeys ?? []).map((text, i) => ({ text, field: `repository.signing.trustedKeys[${i}]` })),
  ];
  for (const { text, field } of listed) {
    try {
      SigningPublicKey.parse(text);
    } catch (cause) {
      throw new WardenError(
        'WARDEN_E_CONFIG_INVALID',
        `${field}: "${text}" is not a signing public key (wardensig1...): ${(cause as Error).message}`,
        {
          hint: '`warden repo keygen --signing` prints one; `warden repo keys` lists the keys a repository uses.',
          details: { field },
          cause,
        },
      );
    }
  }
  const trustedKeysFiles = [
    ...(flags.trustedKeysFile ? [path.resolve(cwd, flags.trustedKeysFile)] : []),
    ...(file?.trustedKeysFile ? [path.resolve(fileDir, file.trustedKeysFile)] : []),
  ];
  return {
    ...(keyFile ? { keyFile } : {}),
    defaultKeyFile: path.resolve(cwd, DEFAULT_SIGNING_KEY_FILE),
    trustedKeys: [...new Set(listed.map((k) => k.text.trim()))],
    trustedKeysFiles,
    allowUnsigned:
      flags.allowUnsigned === true || env.WARDEN_ALLOW_UNSIGNED === '1' || file?.allowUnsigned === true,
  };
}
