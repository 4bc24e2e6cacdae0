import { createHash, randomBytes } from 'node:crypto';
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
  /**
   * Random id given at creation (32 hex digits). Repositories written before it existed get a
   * stable one derived from their metadata on first use (`legacyRepositoryId`).
   */
  repositoryId?: string;
  /**
   * The physical replication slot this repository streams through: `warden_<first 16 hex digits
   * of repositoryId>` by default, or the name it was created with (`--slot`), or `warden` for a
   * repository that streamed through it before slots were recorded.
   */
  slot?: string;
  /**
   * Where the slot stood when this repository created it (its restart_lsn then): until the
   * stream's first flush passes it, the new slot lies beyond the repository's WAL, yet is its own.
   */
  slotCreatedAt?: string;
}

/** The slot every repository streamed through before each got its own. */
export const LEGACY_SLOT = 'warden';

/** Prefix of the slot names Warden derives from repository ids (`warden_<16 hex digits>`). */
const DERIVED_SLOT = /^warden_([0-9a-f]{16})$/;

export function newRepositoryId(): string {
  return randomBytes(16).toString('hex');
}

/**
 * The id of a repository written before ids existed: derived from what made it unique (its
 * cluster, creation time and creator), so every process upgrading it at once agrees on one.
 */
export function legacyRepositoryId(meta: RepositoryMeta): string {
  return createHash('sha256')
    .update(`${meta.systemId}\n${meta.createdAt}\n${meta.createdBy}`)
    .digest('hex')
    .slice(0, 32);
}

/** The slot a repository gets by default: named after its id, so another repository's differs. */
export function derivedSlotName(repositoryId: string): string {
  return `warden_${repositoryId.slice(0, 16)}`;
}

/** The id prefix a derived slot name stands for (undefined for any other name). */
export function slotOwnerPrefix(slot: string): string | undefined {
  return DERIVED_SLOT.exec(slot)?.[1];
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
