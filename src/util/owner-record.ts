import { randomBytes } from 'node:crypto';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WardenError } from '../errors.ts';
import { currentProcessIdentity, processLiveness, type ProcessIdentity } from './process-identity.ts';

/** A claim on a place (a state folder, an HTTP port) held by this process until released. */
export interface OwnerClaim {
  readonly file: string;
  readonly owner: ProcessIdentity;
  /** Rewrites the record with more about the owner (e.g. how to connect), atomically. */
  update(extra: Record<string, unknown>): Promise<void>;
  /** Removes the record if it is still this process's. Idempotent. */
  release(): Promise<void>;
}

/** What a record holds: who owns the place, plus what the owner chose to add. */
export type OwnerRecord = ProcessIdentity & Record<string, unknown>;

const ATTEMPTS = 3;

/**
 * Claims `file` for this process: one owner per place. A record whose owner still runs
 * (PID and start time, see {@link processLiveness}) is left as it is and the claim fails with
 * WARDEN_E_ALREADY_RUNNING naming that owner; a record whose owner is provably dead is taken over.
 * The record appears whole or not at all (written aside, then hard-linked into place, which
 * fails if a record exists), so a reader never sees half of one.
 *
 * Two processes taking over the same stale record in the same instant could both remove it;
 * the places guarded here add their own exclusion behind this one (PostgreSQL's postmaster.pid,
 * the port's listen()), so that window costs a clear error, never a stopped server.
 */
export async function claimOwnerRecord(
  file: string,
  what: string,
  extra: Record<string, unknown> = {},
): Promise<OwnerClaim> {
  const owner = currentProcessIdentity();
  for (let attempt = 1; ; attempt += 1) {
    if (await createExclusive(file, { ...owner, ...extra })) return claimFor(file, owner);
    const existing = await readOwnerRecord(file);
    if (existing && existing.pid !== owner.pid && processLiveness(existing) === 'alive') {
      throw alreadyRunning(what, existing, file);
    }
    if (attempt >= ATTEMPTS)
      throw new WardenError('WARDEN_E_ALREADY_RUNNING', `${what}: cannot claim ${file}`, {
        hint: 'Another process keeps replacing it; stop the other Warden first.',
        details: { file },
      });
    // Dead owner (or no readable owner at all): the place is free.
    await rm(file, { force: true });
  }
}

/** The record in `file`, or undefined when there is none or it names no process. */
export async function readOwnerRecord(file: string): Promise<OwnerRecord | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const record = JSON.parse(text) as Partial<OwnerRecord> | null;
    if (!record || typeof record.pid !== 'number') return undefined;
    return {
      ...record,
      pid: record.pid,
      startedAt: typeof record.startedAt === 'string' ? record.startedAt : 'an unknown time',
    } as OwnerRecord;
  } catch {
    return undefined;
  }
}

/** The record in `file` if its owner still runs. */
export async function liveOwnerRecord(file: string): Promise<OwnerRecord | undefined> {
  const record = await readOwnerRecord(file);
  return record && processLiveness(record) === 'alive' ? record : undefined;
}

/** "<what> is already running (pid N, since T)", exit 2: a second owner would harm the first. */
export function alreadyRunning(what: string, owner: ProcessIdentity, file: string): WardenError {
  return new WardenError(
    'WARDEN_E_ALREADY_RUNNING',
    `${what} is already running (pid ${owner.pid}, since ${owner.startedAt})`,
    {
      hint: `Use that one, or stop it first (kill -INT ${owner.pid}); ${file} records it and is removed when it stops.`,
      details: { pid: owner.pid, since: owner.startedAt, record: file },
    },
  );
}

async function createExclusive(file: string, record: Record<string, unknown>): Promise<boolean> {
  const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(aside, JSON.stringify(record), { mode: 0o600 });
  try {
    await link(aside, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await rm(aside, { force: true });
  }
}

function claimFor(file: string, owner: ProcessIdentity): OwnerClaim {
  let released = false;
  const ours = async () => {
    const record = await readOwnerRecord(file).catch(() => undefined);
    return record?.pid === owner.pid && record.startTicks === owner.startTicks;
  };
  return {
    file,
    owner,
    async update(extra) {
      const aside = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
      await writeFile(aside, JSON.stringify({ ...owner, ...extra }), { mode: 0o600 });
      await rename(aside, file);
    },
    async release() {
      if (released) return;
      released = true;
      if (await ours()) await rm(file, { force: true });
    },
  };
}
