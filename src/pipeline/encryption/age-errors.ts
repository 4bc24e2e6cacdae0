import { WardenError } from '../../errors.ts';

/** What is wrong with an age file, as named in `details.problem`. */
export type AgeProblem =
  | 'bad-header'
  | 'scrypt-not-alone'
  | 'header-mac-mismatch'
  | 'truncated'
  | 'chunk-authentication-failed'
  | 'chunks-reordered'
  | 'trailing-data'
  | 'empty-last-chunk';

/** A damaged age file: WARDEN_E_REPO_CORRUPT, naming the object and what is wrong with it. */
export function ageCorrupt(
  problem: AgeProblem,
  message: string,
  object: string | undefined,
  extra: Record<string, unknown> = {},
): WardenError {
  return new WardenError(
    'WARDEN_E_REPO_CORRUPT',
    object ? `encrypted object ${object}: ${message}` : `age file: ${message}`,
    {
      hint: 'The stored bytes were changed, cut short or reordered; restore from another backup or repository copy.',
      details: { ...(object ? { object } : {}), problem, ...extra },
    },
  );
}

/** None of the given identities can open the file. */
export function keyMismatch(
  object: string | undefined,
  recipients: readonly string[],
  identities: readonly string[],
): WardenError {
  return new WardenError(
    'WARDEN_E_KEY_MISMATCH',
    `${object ? `object ${object}` : 'the age file'} is not encrypted to any of the given identities`,
    {
      hint: 'Pass the identity (--identity FILE) or passphrase (--passphrase-file F) this backup was encrypted with; `warden repo keys` lists which key each backup needs.',
      details: { ...(object ? { object } : {}), recipients, identities },
    },
  );
}

export function keyMissing(object: string | undefined, recipients: readonly string[]): WardenError {
  return new WardenError(
    'WARDEN_E_KEY_MISSING',
    `${object ? `object ${object}` : 'the age file'} is encrypted and no identity was given`,
    {
      hint: 'Pass --identity FILE (an AGE-SECRET-KEY-1... file) or --passphrase-file F; `warden repo keys` lists which key each backup needs.',
      details: { ...(object ? { object } : {}), recipients },
    },
  );
}
