import type { TrustPolicy } from '../signing/record-signature.ts';
import type { SigningKey } from '../signing/signing-keys.ts';
import type { AgeIdentity, AgeRecipient } from './age-keys.ts';

/**
 * How one stored object is encrypted, recorded beside it (backup.json, WAL segment records):
 * an age v1 file to these recipients (`age1...`). Object names do not change; the record says
 * the bytes are an age file wrapping the compressed data.
 */
export interface ObjectEncryption {
  format: 'age-v1';
  recipients: string[];
}

/**
 * The keys a repository handle writes with (recipients, signing key) and reads with
 * (identities, trust). Without `signingKey` records are written unsigned; without `trust`
 * records are read without checking signatures (the library default; the CLI and daemon always
 * pass a trust set to restore, verify, drills and `repo copy`).
 */
export interface RepositoryKeys {
  recipients?: readonly AgeRecipient[];
  identities?: readonly AgeIdentity[];
  /** Signs every record this handle commits (docs/security.md). */
  signingKey?: SigningKey;
  /** The public keys whose records this handle accepts; reads refuse anything else. */
  trust?: TrustPolicy;
}

export function encryptionRecord(recipients: readonly AgeRecipient[]): ObjectEncryption {
  return { format: 'age-v1', recipients: recipients.map((r) => r.label).sort() };
}

/** True when one of the identities is for one of the recipients the object records. */
export function identitiesMatch(encryption: ObjectEncryption, identities: readonly AgeIdentity[]): boolean {
  return identities.some((identity) => encryption.recipients.includes(identity.label));
}
