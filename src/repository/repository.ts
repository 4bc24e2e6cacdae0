import os from 'node:os';
import { WardenError } from '../errors.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { ObjectStore } from './object-store.ts';
import { checkTrusted, signedForWrite } from './record-trust.ts';
import { META_KEY, parseRepositoryMeta, REPOSITORY_FORMAT, type RepositoryMeta } from './repository-meta.ts';

export interface ClusterIdentity {
  systemId: string;
  walSegmentSize: number;
  serverVersion: string;
}

/**
 * A repository: an object store plus the metadata saying which cluster it protects, and the
 * keys this handle encrypts new objects to and decrypts stored ones with (none: plaintext).
 */
export class Repository {
  constructor(
    readonly store: ObjectStore,
    readonly meta: RepositoryMeta,
    readonly keys: RepositoryKeys = {},
  ) {}

  get location(): string {
    return this.store.location;
  }

  /**
   * Opens an existing repository; fails with WARDEN_E_REPO_NOT_INITIALIZED when there is none.
   * With `keys.trust`, `warden-repo.json` and every record read through the handle must be
   * signed by a trusted key.
   */
  static async open(store: ObjectStore, keys?: RepositoryKeys): Promise<Repository> {
    if (!(await store.stat(META_KEY))) {
      throw new WardenError('WARDEN_E_REPO_NOT_INITIALIZED', `${store.location} is not a Warden repository`, {
        hint: 'Take a backup or start `warden wal stream` with this --repo to create it.',
        details: { repository: store.location },
      });
    }
    const repository = new Repository(
      store,
      parseRepositoryMeta(await store.getBuffer(META_KEY), store.location),
      keys,
    );
    checkTrusted(repository, META_KEY, repository.meta);
    return repository;
  }

  /**
   * Opens the repository for a cluster, creating it on first use; refuses another cluster's.
   * This is the writers' handle: it signs what it commits but checks no signatures on what it
   * reads (`keys.trust` is dropped), so a writer keeps protecting a repository that still holds
   * unsigned records; readers (restore, verify, drills, copy) are the ones that refuse.
   */
  static async openFor(
    store: ObjectStore,
    cluster: ClusterIdentity,
    withTrust?: RepositoryKeys,
  ): Promise<Repository> {
    const { trust: _readersOnly, ...keys } = withTrust ?? {};
    if (await store.stat(META_KEY)) {
      const repository = await Repository.open(store, keys);
      repository.assertSameCluster(cluster.systemId);
      return repository;
    }
    const meta: RepositoryMeta = {
      format: REPOSITORY_FORMAT,
      systemId: cluster.systemId,
      walSegmentSize: cluster.walSegmentSize,
      serverVersion: cluster.serverVersion,
      createdAt: new Date().toISOString(),
      createdBy: `warden on ${os.hostname()}`,
    };
    const repository = new Repository(store, meta, keys);
    const signed = signedForWrite(repository, META_KEY, meta);
    // Exclusive create: two processes initializing at once agree on one meta file.
    if (!(await store.createExclusive(META_KEY, Buffer.from(`${JSON.stringify(signed, null, 2)}\n`)))) {
      return Repository.openFor(store, cluster, keys);
    }
    return repository;
  }

  assertSameCluster(systemId: string): void {
    if (systemId !== this.meta.systemId) {
      throw new WardenError(
        'WARDEN_E_REPO_CLUSTER_MISMATCH',
        `repository ${this.location} belongs to cluster ${this.meta.systemId}, not ${systemId}`,
        {
          hint: 'Use a separate repository for each PostgreSQL cluster.',
          details: { repositorySystemId: this.meta.systemId, serverSystemId: systemId },
        },
      );
    }
  }
}
