import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WardenError } from '../../errors.ts';
import { X25519Identity } from '../../pipeline/encryption/age-keys.ts';
import { identityFileText } from '../../pipeline/encryption/keyring.ts';
import { SigningKey, signingKeyFileText } from '../../pipeline/signing/signing-keys.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../render.ts';

export interface KeygenFlags {
  output?: string;
  /** A signing key instead of an age identity. */
  signing?: boolean;
}

/**
 * `warden repo keygen [--signing] [-o FILE]`: a new X25519 identity, like `age-keygen`. The
 * public key (`age1...`) goes to the backup machine (`--recipient`); the file is needed only to
 * restore. With --signing, an Ed25519 signing key instead (see signingKeyPair).
 */
export async function repoKeygenCommand(context: CommandContext, flags: KeygenFlags): Promise<number> {
  const { publicKey, secret, text } = flags.signing ? signingKeyPair() : ageKeyPair();
  if (!flags.output) {
    if (context.json) printJson({ publicKey, [flags.signing ? 'signingKey' : 'identity']: secret });
    else process.stdout.write(text);
    return 0;
  }
  const file = path.resolve(flags.output);
  try {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(file, text, { mode: 0o600, flag: 'wx' });
  } catch (cause) {
    throw new WardenError('WARDEN_E_USAGE', `cannot create ${file}: ${(cause as Error).message}`, {
      hint: 'keygen never overwrites a key file; choose another name.',
      details: { file },
      cause,
    });
  }
  if (context.json) printJson({ publicKey, file });
  else process.stderr.write(`Public key: ${publicKey}\n`);
  return 0;
}

function ageKeyPair(): { publicKey: string; secret: string; text: string } {
  const identity = X25519Identity.generate();
  return { publicKey: identity.label, secret: identity.encode(), text: identityFileText(identity) };
}

/**
 * A signing key: the file stays with the backup writer (`--signing-key`); the public key goes
 * to every machine that restores or verifies (`--trust-key`, repository.signing.trustedKeys).
 */
function signingKeyPair(): { publicKey: string; secret: string; text: string } {
  const key = SigningKey.generate();
  return { publicKey: key.id, secret: key.encode(), text: signingKeyFileText(key) };
}
