import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { WardenError } from '../errors.ts';
import {
  describeHolder,
  encodeHolder,
  leaseExpired,
  LockLease,
  lostByThisProcess,
  readLock,
  type LockHolder,
  type StoredLock,
} from './lock-lease.ts';
import type { ObjectStore } from './object-store.ts';
import { hostTag, tempWriter } from './temp-name.ts';

export { LockLease, type LockHolder } from './lock-lease.ts';

export interface LockOptions {
  /**
   * How long the lock stays valid after each renewal (default 60 s). The holder renews it every
   * sixth of that and gives it up after half of it without a successful renewal.
   */
  leaseMs?: number;
}

export const DEFAULT_LEASE_MS = 60_000;
/** Rounds of create / inspect / take over before giving up on a lock that keeps changing. */
const MAX_ROUNDS = 8;
/** Successive claims on one stale lock, each breaking the previous one after its claimant died. */
const MAX_CLAIMS = 4;
/** How long a lock body that does not parse must stay unchanged to count as a crash leftover. */
const UNREADABLE_GRACE_MS = 1_000;

/**
 * A named lock inside the repository (`locks/<name>.lock`), so two Warden processes never run
 * the same writer (two backups, two WAL receivers) against one repository, from any host.
 *
 * The lock is a lease that its holder renews (see `LockLease`). A lock is stale when its lease
 * ran out by this host's clock, when its holder was a process on this host that is gone, or when
 * it is a lease this very process lost (see `lostByThisProcess`); a stale lock is taken over (see `takeOver`). A live one throws `WARDEN_E_REPO_LOCKED` naming its
 * holder. Locks written before leases existed have no expiry: only the same-host rule applies.
 *
 * @example
 * const lock = await acquireLock(store, 'backup', 'base backup');
 * try {
 *   await work({ signal: lock.signal });
 * } finally {
 *   await lock.release();
 * }
 */
export async function acquireLock(
  store: ObjectStore,
  name: string,
  purpose: string,
  options: LockOptions = {},
): Promise<LockLease> {
  const key = lockKey(name);
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const host = os.hostname();
  let unreadable: Buffer | undefined;
  for (let round = 0; round < MAX_ROUNDS; round += 1) {
    const now = Date.now();
    const me = {
      pid: process.pid,
      host,
      startedAt: new Date(now).toISOString(),
      purpose,
      token: randomBytes(16).toString('hex'),
      renewedAt: new Date(now).toISOString(),
      expiresAt: new Date(now + leaseMs).toISOString(),
      leaseMs,
    };
    const writtenAt = performance.now();
    if (await createConfirmed(store, key, me.token, encodeHolder(me))) {
      return holdAndTidy(store, key, me, writtenAt);
    }
    const current = await readLock(store, key);
    if (!current) continue; // released in the meantime
    let stale: boolean;
    if (current.holder) {
      stale = isStale(current.holder, host);
      unreadable = undefined;
    } else {
      // A body that does not parse is a creation cut short by a crash, or one still being
      // written: stale once it has stayed the same for a while.
      stale = unreadable?.equals(current.raw) === true;
      if (!stale) {
        unreadable = current.raw;
        await sleep(UNREADABLE_GRACE_MS);
        continue;
      }
    }
    if (!stale) throw locked(store, name, current.holder, host);
    const outcome = await takeOver(store, key, current, me, leaseMs);
    if (outcome === 'taken') return holdAndTidy(store, key, me, writtenAt);
    // Another process is taking it over right now: look again shortly (10, 20, 40 ms ... 640 ms).
    if (outcome === 'busy') await sleep(10 * 2 ** Math.min(round, 6));
  }
  const last = await readLock(store, key);
  throw locked(store, name, last?.holder, host);
}

/** Holds the lock just acquired, after removing what killed processes left in `locks/`. */
async function holdAndTidy(
  store: ObjectStore,
  key: string,
  me: Parameters<typeof LockLease.hold>[2],
  writtenAt: number,
): Promise<LockLease> {
  const lease = LockLease.hold(store, key, me, writtenAt);
  // Best effort: a leftover that cannot be removed now is removed by a later acquisition.
  await removeStaleLockLeftovers(store).catch(() => undefined);
  return lease;
}

/**
 * Removes from `locks/` what killed processes left and no later run would otherwise remove,
 * only what is provably dead:
 * - a temp object of an unfinished lock or claim write (`*.tmp-<host>-<pid>-<random>`, see
 *   temp-name.ts) whose writer was a process on this host that is gone (one of another host, or
 *   named before writers were named, cannot be told from a write under way: it stays);
 * - a take-over claim `locks/<name>.takeover.<id>.<n>` whose claimant is stale (its lease ran
 *   out, or its process on this host is gone) AND whose `<id>` is not the hash of the lock's
 *   current bytes. Such a claim can no longer win: a claimant goes on only while the lock still
 *   has the bytes it hashed, and a lock's bytes never come back (each write has a new token and
 *   times). A claim on the current bytes stays even when its claimant is dead: removing it would
 *   let a new contender take claim `<n>` while another holds `<n + 1>`, and both could take the
 *   lock over. The lock's bytes are read again right before each removal, so a lock that went
 *   stale meanwhile keeps the claims on it.
 */
export async function removeStaleLockLeftovers(store: ObjectStore): Promise<number> {
  const host = os.hostname();
  const ownTag = hostTag(host);
  let removed = 0;
  for (const key of await store.list('locks/', { includeIncomplete: true })) {
    if (key.includes('.tmp-')) {
      const writer = tempWriter(key);
      if (writer && writer.hostTag === ownTag && !processAlive(writer.pid)) {
        await store.delete(key);
        removed += 1;
      }
      continue;
    }
    const claim = TAKEOVER_CLAIM.exec(key);
    if (!claim) continue;
    const holder = (await readLock(store, key))?.holder;
    if (!holder || !isStale(holder, host)) continue;
    const lock = await readLock(store, `${claim[1]}.lock`);
    if (lock && lockBytesId(lock.raw) === claim[2]) continue;
    await store.delete(key);
    removed += 1;
  }
  return removed;
}

const TAKEOVER_CLAIM = /^(locks\/.+)\.takeover\.([0-9a-f]{16})\.\d+$/;

/** The `<id>` of take-over claims on a lock with these exact bytes. */
function lockBytesId(raw: Buffer): string {
  return createHash('sha256').update(raw).digest('hex').slice(0, 16);
}

/**
 * The live holder of a lock, if any (used to tell whether a WAL receiver is running): a lock
 * whose lease ran out, or whose holder was a process on this host that is gone, is not held.
 */
export async function lockHolder(store: ObjectStore, name: string): Promise<LockHolder | undefined> {
  const current = await readLock(store, lockKey(name));
  if (!current?.holder || isStale(current.holder, os.hostname())) return undefined;
  return current.holder;
}

function lockKey(name: string): string {
  return `locks/${name}.lock`;
}

function isStale(holder: LockHolder, host: string): boolean {
  return (
    leaseExpired(holder) || (holder.host === host && (!processAlive(holder.pid) || lostByThisProcess(holder)))
  );
}

/**
 * Replaces the stale lock `stale` with `me`, letting exactly one of several contenders do so.
 *
 * The store offers no compare-and-swap, only create-if-absent. So a contender first creates a
 * claim, `locks/<name>.takeover.<id>.<n>`, where `<id>` is a hash of the stale lock's exact bytes:
 * of all contenders that saw those bytes, only the creator of the claim goes on. It then re-reads
 * the lock and overwrites it only if the bytes are unchanged (not renewed, released or already
 * taken over) — the lock is never absent meanwhile, so no bystander can create it either.
 * Removing the claims afterwards is safe: a later claimant finds the lock changed and backs off.
 * A claimant that died leaves its claim; once that claim is stale like a lock (its lease ran out,
 * or its process on this host is gone), the next contender uses claim `<n + 1>`.
 */
async function takeOver(
  store: ObjectStore,
  key: string,
  stale: StoredLock,
  me: LockHolder & { token: string },
  leaseMs: number,
): Promise<'taken' | 'busy' | 'changed'> {
  const id = lockBytesId(stale.raw);
  const claimKey = (n: number) => `${key.replace(/\.lock$/, '')}.takeover.${id}.${n}`;
  const claimedAt = performance.now();
  const claimBody = encodeHolder({
    ...me,
    purpose: `take over ${key}`,
    expiresAt: new Date(Date.now() + leaseMs).toISOString(),
  });
  let claim = -1;
  for (let n = 0; n < MAX_CLAIMS && claim < 0; n += 1) {
    if (await createConfirmed(store, claimKey(n), me.token, claimBody)) {
      claim = n;
      break;
    }
    const other = await readLock(store, claimKey(n));
    if (!other) return 'changed'; // that take-over finished and cleaned up
    // A claimant that died (on this host: its pid is gone) is not waited for until its lease
    // ends: that would fail the next command with "locked" by a process that no longer exists.
    if (other.holder && !isStale(other.holder, os.hostname())) return 'busy';
  }
  if (claim < 0) return 'busy';
  try {
    const current = await readLock(store, key);
    if (!current?.raw.equals(stale.raw)) return 'changed';
    // A claimant paused this long may have had its claim broken by the next one: start over.
    if (performance.now() - claimedAt > leaseMs / 2) return 'changed';
    await store.putBuffer(key, encodeHolder(me));
    return (await readLock(store, key))?.holder?.token === me.token ? 'taken' : 'changed';
  } finally {
    for (let n = 0; n <= claim; n += 1) await store.delete(claimKey(n)).catch(() => undefined);
  }
}

/**
 * `createExclusive`, then a second look that the object carries our token. On a store whose
 * create-if-absent is atomic (the filesystem; S3 with conditional writes) the look always
 * succeeds. On an S3-compatible server that ignores `If-None-Match` the adapter falls back to
 * HEAD-then-PUT, and a racing contender's PUT lands within about one such round trip after ours:
 * waiting as long as our own create took before looking narrows that race; it cannot close it.
 */
async function createConfirmed(
  store: ObjectStore,
  key: string,
  token: string,
  body: Buffer,
): Promise<boolean> {
  const started = performance.now();
  if (!(await store.createExclusive(key, body))) return false;
  await sleep(performance.now() - started);
  return (await readLock(store, key))?.holder?.token === token;
}

function locked(store: ObjectStore, name: string, holder: LockHolder | undefined, host: string): WardenError {
  const key = lockKey(name);
  return new WardenError(
    'WARDEN_E_REPO_LOCKED',
    `repository ${store.location} is locked for ${name} by ${describeHolder(holder)}`,
    {
      hint:
        holder?.host === host
          ? 'Wait for that process to finish.'
          : holder?.expiresAt
            ? `Wait for that process to finish; if it is gone, its lease runs out at ${holder.expiresAt} and the lock is taken over then.`
            : `Check the process on ${holder?.host ?? 'its host'}; remove ${key} only if it is gone.`,
      details: { lock: key, holder },
    },
  );
}

/** Whether a process of this host with that pid exists (EPERM: it does, as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
