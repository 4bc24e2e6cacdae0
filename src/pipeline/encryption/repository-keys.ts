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

/** The keys a repository handle writes with (recipients) and reads with (identities). */
export interface RepositoryKeys {
  recipients?: readonly AgeRecipient[];
  identities?: readonly AgeIdentity[];
}

export function encryptionRecord(recipients: readonly AgeRecipient[]): ObjectEncryption {
  return { format: 'age-v1', recipients: recipients.map((r) => r.label).sort() };
}

/** True when one of the identities is for one of the recipients the object records. */
export function identitiesMatch(encryption: ObjectEncryption, identities: readonly AgeIdentity[]): boolean {
  return identities.some((identity) => encryption.recipients.includes(identity.label));
}
