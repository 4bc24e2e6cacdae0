import { WardenError } from '../errors.ts';
import type { RecordSignature } from '../pipeline/signing/record-signature.ts';

export const REPOSITORY_FORMAT = 1;
export const META_KEY = 'warden-repo.json';

/** `warden-repo.json`: what makes a directory a Warden repository, and whose. */
export interface RepositoryMeta {
  format: number;
  /** PostgreSQL system identifier of the cluster this repository protects. */
  systemId: string;
  walSegmentSize: number;
  serverVersion: string;
  createdAt: string;
  createdBy: string;
  /** The creating writer's signature (docs/security.md); absent in repositories not yet signed. */
  signature?: RecordSignature;
}

export function parseRepositoryMeta(data: Buffer, location: string): RepositoryMeta {
  let meta: RepositoryMeta;
  try {
    meta = JSON.parse(data.toString('utf8')) as RepositoryMeta;
  } catch (cause) {
    throw new WardenError('WARDEN_E_REPO_FORMAT', `${location}/${META_KEY} is not valid JSON`, { cause });
  }
  if (meta.format !== REPOSITORY_FORMAT || typeof meta.systemId !== 'string') {
    throw new WardenError(
      'WARDEN_E_REPO_FORMAT',
      `${location}/${META_KEY} has unknown format ${String(meta.format)}`,
      {
        hint: 'This repository was written by another version of Warden.',
      },
    );
  }
  return meta;
}
