import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { META_KEY } from '../repository/repository-meta.ts';
import { Repository } from '../repository/repository.ts';

/**
 * The system identifier a repository gets when a Redis backup creates it. Redis has no such
 * identifier; this one keeps PostgreSQL backups of any real cluster out of a Redis-only
 * repository (WARDEN_E_REPO_CLUSTER_MISMATCH), as a second cluster's would be.
 */
export const REDIS_ONLY_SYSTEM_ID = 'redis';

/**
 * The writer's handle for Redis backups: an existing repository (Redis backups live beside the
 * PostgreSQL backups of the deployment, signed and encrypted alike), or a new Redis-only one.
 */
export async function openRepositoryForRedis(store: ObjectStore, keys?: RepositoryKeys): Promise<Repository> {
  const { trust: _readersOnly, ...writerKeys } = keys ?? {};
  if (await store.stat(META_KEY)) return Repository.open(store, writerKeys);
  return Repository.openFor(
    store,
    { systemId: REDIS_ONLY_SYSTEM_ID, walSegmentSize: 16 * 1024 * 1024, serverVersion: 'redis' },
    keys,
  );
}

/** Removes every object of an attempt (a store may not delete a prefix in one call). */
export async function removeRedisAttempt(store: ObjectStore, prefix: string): Promise<void> {
  const keys = await store.list(prefix, { includeIncomplete: true }).catch(() => [] as string[]);
  for (const key of keys) await store.delete(key).catch(() => undefined);
  await store.delete(prefix).catch(() => undefined);
}
