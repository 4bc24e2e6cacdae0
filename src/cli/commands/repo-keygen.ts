import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WardenError } from '../../errors.ts';
import { X25519Identity } from '../../pipeline/encryption/age-keys.ts';
import { identityFileText } from '../../pipeline/encryption/keyring.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../render.ts';

export interface KeygenFlags {
  output?: string;
}

/**
 * `warden repo keygen [-o FILE]`: a new X25519 identity, like `age-keygen`. The public key
 * (`age1...`) goes to the backup machine (`--recipient`); the file is needed only to restore.
 */
export async function repoKeygenCommand(context: CommandContext, flags: KeygenFlags): Promise<number> {
  const identity = X25519Identity.generate();
  const text = identityFileText(identity);
  if (!flags.output) {
    if (context.json) printJson({ publicKey: identity.label, identity: identity.encode() });
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
  if (context.json) printJson({ publicKey: identity.label, file });
  else process.stderr.write(`Public key: ${identity.label}\n`);
  return 0;
}
