import type { S3RepositoryConfig } from '../config/s3-config.ts';
import { FsObjectStore } from './fs/fs-object-store.ts';
import type { ObjectStore } from './object-store.ts';
import { S3ObjectStore } from './s3/s3-object-store.ts';

/** The store for a configured repository: an S3 bucket when `s3` is set, else a directory. */
export function openObjectStore(repository: { path: string; s3?: S3RepositoryConfig }): ObjectStore {
  return repository.s3 ? new S3ObjectStore(repository.s3) : new FsObjectStore(repository.path);
}
