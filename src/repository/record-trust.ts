import { assertTrustedRecord, signRecord } from '../pipeline/signing/record-signature.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { RepositoryMeta } from './repository-meta.ts';

/** The part of a repository handle that signing and trust need (a `Repository` is one). */
export interface TrustScope {
  readonly keys: Pick<RepositoryKeys, 'signingKey' | 'trust'>;
  readonly meta: Pick<RepositoryMeta, 'systemId'>;
}

/**
 * The record as a handle writes it: signed when the handle holds a signing key. The signature
 * binds the record's key and the repository's system identifier, so it cannot be replayed
 * under another name or in another cluster's repository.
 */
export function signedForWrite<T extends object>(repository: TrustScope, object: string, record: T): T {
  const key = repository.keys.signingKey;
  return key ? signRecord(record, { object, systemId: repository.meta.systemId }, key) : record;
}

/** Refuses a record the handle's trust set does not accept; a handle without one accepts all. */
export function checkTrusted(repository: TrustScope, object: string, record: unknown): void {
  const trust = repository.keys.trust;
  if (trust) assertTrustedRecord(record, { object, systemId: repository.meta.systemId }, trust);
}
