import { readFile } from 'node:fs/promises';
import { WardenError } from '../errors.ts';

/**
 * Reads a key file (identities, recipients, a passphrase, signing keys) and parses it; a file
 * that cannot be read or holds no key is a configuration error naming the file, with `hint`
 * (how to make one) when the caller knows it.
 */
export async function readKeyFile<T>(
  file: string,
  what: string,
  parse: (text: string) => T[],
  hint?: string,
): Promise<T[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${what} ${file} cannot be read`, {
      ...(hint ? { hint } : {}),
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
