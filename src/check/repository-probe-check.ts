import { randomBytes } from 'node:crypto';
import { rmdir } from 'node:fs/promises';
import path from 'node:path';
import { nearestExisting } from './nearest-existing.ts';
import { isWardenError, WardenError } from '../errors.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { META_KEY, parseRepositoryMeta } from '../repository/repository-meta.ts';
import { fail, failFrom, ok, type CheckResult } from './check-result.ts';

const NAME = 'repository';

/**
 * Writes, reads back and deletes a small probe object at the repository's top level, as a
 * backup writes its objects. The probe is deleted whatever happened after its write was tried,
 * and a directory repository's directories that the probe created (the repository did not exist
 * yet) are removed again: the check leaves the location as it found it.
 */
export async function checkRepository(
  store: ObjectStore,
  options: {
    /** A directory repository's path (its created directories are removed again). */
    directory?: string;
    /** The server's system identifier, when known: a repository of another cluster fails. */
    systemId?: string;
  } = {},
): Promise<CheckResult> {
  const { directory } = options;
  const key = `warden-check-${randomBytes(8).toString('hex')}.probe`;
  const data = randomBytes(64);
  const existing = directory ? nearestExisting(directory) : undefined;
  let result: CheckResult;
  try {
    await store.putBuffer(key, data);
    const back = await store.getBuffer(key);
    if (!back.equals(data))
      return fail(
        NAME,
        'WARDEN_E_REPO_CORRUPT',
        `${store.location}: the probe object read back differs from what was written`,
        {
          fix: 'Check the storage (or whatever sits in front of it): it does not return what it stored.',
          details: { probe: key },
        },
      );
    await store.delete(key);
    if (await store.stat(key))
      return fail(
        NAME,
        'WARDEN_E_REPO_IO',
        `${store.location}: the probe object is still there after its deletion`,
        {
          fix: 'Give Warden the right to delete objects there (expire and cleanup need it).',
          details: { probe: key },
        },
      );
    const systemId = await repositorySystemId(store);
    if (systemId !== undefined && options.systemId !== undefined && systemId !== options.systemId)
      return fail(
        NAME,
        'WARDEN_E_REPO_CLUSTER_MISMATCH',
        `${store.location} is the repository of cluster ${systemId}, not of this server (${options.systemId})`,
        {
          fix: 'Use a separate repository for each PostgreSQL cluster (another --repo).',
          details: { repositorySystemId: systemId, serverSystemId: options.systemId },
        },
      );
    const what =
      systemId === undefined
        ? 'no repository yet (the first backup or `warden wal stream` creates it)'
        : `repository of cluster ${systemId}`;
    result = ok(NAME, `${store.location}: write, read and delete work; ${what}`);
  } catch (error) {
    result = repositoryFailure(store, error);
  } finally {
    await store.delete(key).catch(() => undefined);
    if (directory && existing) await removeCreated(directory, existing);
  }
  return result;
}

function repositoryFailure(store: ObjectStore, error: unknown): CheckResult {
  const wrapped = isWardenError(error)
    ? error
    : new WardenError('WARDEN_E_REPO_IO', `repository I/O failed: ${(error as Error).message}`, {
        details: { errno: (error as NodeJS.ErrnoException).code },
        cause: error,
      });
  const reason = wrapped.details.s3Code ?? wrapped.details.errno;
  const fix =
    reason === 'NoSuchBucket'
      ? `The bucket does not exist: create it (or correct repository.s3.bucket).`
      : reason === 'ENOTDIR'
        ? `A part of the path ${store.location} is a file, not a directory: choose another --repo.`
        : reason === 'EACCES' || reason === 'EPERM' || reason === 'EROFS'
          ? `Let the user Warden runs as write there (or choose another --repo).`
          : (wrapped.hint ?? 'Check the repository location and the rights Warden has there.');
  return { ...failFrom(NAME, wrapped, `${store.location} is not writable`), fix };
}

async function repositorySystemId(store: ObjectStore): Promise<string | undefined> {
  if (!(await store.stat(META_KEY))) return undefined;
  return parseRepositoryMeta(await store.getBuffer(META_KEY), store.location).systemId;
}

/** Removes the (empty) directories between `existing` and `directory` that the probe created. */
async function removeCreated(directory: string, existing: string): Promise<void> {
  for (
    let current = path.resolve(directory);
    current !== existing && current.startsWith(existing);
    current = path.dirname(current)
  ) {
    try {
      await rmdir(current);
    } catch {
      return; // not empty (someone else wrote there meanwhile) or not there: leave it
    }
  }
}
