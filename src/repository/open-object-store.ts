import type { S3RepositoryConfig } from '../config/s3-config.ts';
import { FsObjectStore } from './fs/fs-object-store.ts';
import type { RepositoryGroup } from './fs/repository-group.ts';
import type { ObjectStore } from './object-store.ts';

/**
 * The store for a configured repository: an S3 bucket when `s3` is set, else a directory. The
 * S3 adapter (and the AWS SDK, ~25 MB of memory) is loaded only when a repository needs it.
 */
export async function openObjectStore(repository: {
  path: string;
  s3?: S3RepositoryConfig;
  group?: RepositoryGroup;
}): Promise<ObjectStore> {
  if (!repository.s3)
    return new FsObjectStore(repository.path, repository.group ? { group: repository.group } : {});
  const { S3ObjectStore } = await import('./s3/s3-object-store.ts');
  return new S3ObjectStore(repository.s3);
}
