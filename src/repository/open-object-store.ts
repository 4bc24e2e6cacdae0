import path from 'node:path';
import type { S3RepositoryConfig } from '../config/s3-config.ts';
import { FsObjectStore } from './fs/fs-object-store.ts';
import type { RepositoryGroup } from './fs/repository-group.ts';
import type { ObjectStore } from './object-store.ts';

/**
 * Where a repository lives: an S3 bucket when `s3` is set (`path` is then its
 * `s3://bucket/prefix`, for people to read), else the directory at `path` (readable by `group`
 * when one is set). The CLI composes it from the configuration; the daemon opens it.
 */
export interface RepositoryLocation {
  path: string;
  s3?: S3RepositoryConfig;
  group?: RepositoryGroup;
}

/**
 * The store for a configured repository: an S3 bucket when `s3` is set, else a directory. The
 * S3 adapter (and the AWS SDK, ~25 MB of memory) is loaded only when a repository needs it.
 */
export async function openObjectStore(repository: RepositoryLocation): Promise<ObjectStore> {
  if (!repository.s3)
    return new FsObjectStore(repository.path, repository.group ? { group: repository.group } : {});
  const { S3ObjectStore } = await import('./s3/s3-object-store.ts');
  return new S3ObjectStore(repository.s3);
}

/** Only the location fields of a configured repository (which carries compression, keys …). */
export function repositoryLocation(repository: RepositoryLocation): RepositoryLocation {
  return {
    path: repository.path,
    ...(repository.s3 ? { s3: repository.s3 } : {}),
    ...(repository.group ? { group: repository.group } : {}),
  };
}

/**
 * A repository of its own for one of several clusters sharing a configured one: a sub-directory,
 * or the same bucket under a sub-prefix.
 */
export function childLocation(parent: RepositoryLocation, name: string): RepositoryLocation {
  if (!parent.s3) return { ...parent, path: path.join(parent.path, name) };
  const prefix = parent.s3.prefix ? `${parent.s3.prefix.replace(/\/+$/, '')}/${name}` : name;
  return { ...parent, path: `s3://${parent.s3.bucket}/${prefix}`, s3: { ...parent.s3, prefix } };
}
