import os from 'node:os';
import { WardenError } from '../errors.ts';
import type { ObjectStore } from './object-store.ts';

interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
  purpose: string;
}

/**
 * A named lock inside the repository (`locks/<name>.lock`), so two Warden processes never run
 * the same writer (two backups, two WAL receivers) against one repository. A lock left by a
 * dead process on this host is taken over; one held on another host needs a person to check.
 */
export async function acquireLock(
  store: ObjectStore,
  name: string,
  purpose: string,
): Promise<() => Promise<void>> {
  const key = `locks/${name}.lock`;
  const me: LockHolder = {
    pid: process.pid,
    host: os.hostname(),
    startedAt: new Date().toISOString(),
    purpose,
  };
  const body = Buffer.from(JSON.stringify(me));
  for (let attempt = 0; attempt < 2; attempt += 1) {
    if (await store.createExclusive(key, body)) {
      return async () => store.delete(key);
    }
    const holder = await readHolder(store, key);
    if (holder && holder.host === me.host && !processAlive(holder.pid)) {
      await store.delete(key);
      continue;
    }
    throw new WardenError(
      'WARDEN_E_REPO_LOCKED',
      `repository ${store.location} is locked for ${name} by ${describe(holder)}`,
      {
        hint:
          holder?.host === me.host
            ? 'Wait for that process to finish.'
            : `Check the process on ${holder?.host ?? 'its host'}; remove ${key} only if it is gone.`,
        details: { lock: key, holder },
      },
    );
  }
  throw new WardenError('WARDEN_E_REPO_LOCKED', `could not take lock ${key}`, { details: { lock: key } });
}

/** The live holder of a lock, if any (used to tell whether a WAL receiver is running). */
export async function lockHolder(store: ObjectStore, name: string): Promise<LockHolder | undefined> {
  const holder = await readHolder(store, `locks/${name}.lock`);
  if (!holder) return undefined;
  if (holder.host === os.hostname() && !processAlive(holder.pid)) return undefined;
  return holder;
}

async function readHolder(store: ObjectStore, key: string): Promise<LockHolder | undefined> {
  try {
    return JSON.parse((await store.getBuffer(key)).toString('utf8')) as LockHolder;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function describe(holder: LockHolder | undefined): string {
  return holder
    ? `pid ${holder.pid} on ${holder.host} (${holder.purpose}, since ${holder.startedAt})`
    : 'another process';
}
