import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { WardenError } from '../errors.ts';
import { collect } from '../util/collect.ts';
import type { ObjectStore } from './object-store.ts';

const READ_RETRIES = 3;

/** The body of `locks/<name>.lock`. */
export interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
  purpose: string;
  /** Unique to one acquisition: renewal and release act only on a lock that still carries it. */
  token?: string;
  /** Last renewal and the end of the lease, both on the holder's clock. */
  renewedAt?: string;
  expiresAt?: string;
  leaseMs?: number;
}

/** A lock as read from the store: its exact bytes and, when they parse, its holder. */
export interface StoredLock {
  raw: Buffer;
  holder: LockHolder | undefined;
}

/**
 * Reads a lock. A read that fails or a body that does not parse is tried again (after 25, 50 and
 * 100 ms): a lock read while it is being written comes back torn on a server whose overwrite is
 * not atomic (s3rver, which the tests use), or empty from a file still being created.
 */
export async function readLock(store: ObjectStore, key: string): Promise<StoredLock | undefined> {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const raw = await collect(store.get(key));
      const holder = parseHolder(raw);
      if (holder || attempt >= READ_RETRIES) return { raw, holder };
    } catch (error) {
      // Both adapters report a missing object as ENOENT from `get`.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (attempt >= READ_RETRIES) throw error;
    }
    await sleep(25 * 2 ** attempt);
  }
}

function parseHolder(raw: Buffer): LockHolder | undefined {
  try {
    const value = JSON.parse(raw.toString('utf8')) as LockHolder;
    return typeof value === 'object' && value !== null && typeof value.host === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Tokens of the leases this process lost (not renewed in time, or taken over). Their lock objects
 * can outlive them until their lease runs out, and would block this same process's next
 * acquisition (a WAL receiver restarting after a repository outage) although it knows they are
 * dead: no holder in this process carries those tokens any more.
 */
const lostHere = new Set<string>();

/** True when `holder` is a lease of this process that it has lost: stale, whatever its lease says. */
export function lostByThisProcess(holder: LockHolder): boolean {
  return holder.pid === process.pid && holder.token !== undefined && lostHere.has(holder.token);
}

export function encodeHolder(holder: LockHolder): Buffer {
  return Buffer.from(JSON.stringify(holder));
}

/** True when the holder's lease ran out by this host's clock (never for a lock without lease). */
export function leaseExpired(holder: LockHolder, now = Date.now()): boolean {
  if (!holder.expiresAt) return false;
  const expiresAt = Date.parse(holder.expiresAt);
  return Number.isFinite(expiresAt) && now > expiresAt;
}

export function describeHolder(holder: LockHolder | undefined): string {
  if (!holder) return 'another process';
  const lease = holder.expiresAt ? `, lease until ${holder.expiresAt}` : '';
  return `pid ${holder.pid} on ${holder.host} (${holder.purpose}, since ${holder.startedAt}${lease})`;
}

/**
 * A held repository lock. While held it renews its lease every sixth of the lease length. It is
 * lost — `signal` aborts with `WARDEN_E_REPO_LOCKED` (`details.lost`) — when a renewal finds the
 * lock gone or carrying another token, or when no renewal has succeeded for half a lease: the
 * holder gives up well before another host may take the lock over (a full lease after the last
 * renewal, by that host's clock), so a paused or cut-off process stops its writer first.
 *
 * @example
 * const lock = await acquireLock(store, 'backup', 'base backup');
 * try {
 *   await writeEverything({ signal: lock.signal });
 *   lock.assertHeld();
 *   await commit();
 * } finally {
 *   await lock.release();
 * }
 */
export class LockLease {
  private readonly controller = new AbortController();
  private renewTimer: NodeJS.Timeout | undefined;
  private fenceTimer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private lastError: unknown;
  private stopped = false;

  private constructor(
    private readonly store: ObjectStore,
    /** The lock's object key, `locks/<name>.lock`. */
    readonly key: string,
    private holder: LockHolder & { token: string; leaseMs: number },
  ) {}

  /** Starts renewing a lock that was just written with `holder` (written at `writtenAt`, monotonic). */
  static hold(
    store: ObjectStore,
    key: string,
    holder: LockHolder & { token: string; leaseMs: number },
    writtenAt: number,
  ): LockLease {
    const lease = new LockLease(store, key, holder);
    lease.armFence(writtenAt);
    lease.scheduleRenewal();
    return lease;
  }

  /** Aborted (reason: a `WARDEN_E_REPO_LOCKED` error) once the lock is lost; never on release. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get token(): string {
    return this.holder.token;
  }

  /** Throws the reason the lock was lost, if it was: call before committing anything. */
  assertHeld(): void {
    if (this.controller.signal.aborted) throw this.controller.signal.reason;
  }

  /** Stops renewing and deletes the lock if it still carries this holder's token. Idempotent. */
  async release(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.clearTimers();
    // A renewal in flight would write the lock again after the delete below.
    await this.renewing;
    if (this.controller.signal.aborted) return;
    const current = await readLock(this.store, this.key);
    if (current?.holder?.token === this.holder.token) await this.store.delete(this.key);
  }

  private scheduleRenewal(): void {
    this.renewTimer = setTimeout(() => {
      this.renewing = this.renew().finally(() => {
        this.renewing = undefined;
        if (!this.stopped) this.scheduleRenewal();
      });
    }, this.holder.leaseMs / 6);
    this.renewTimer.unref();
  }

  /** Gives the lock up half a lease after the last renewal that succeeded began. */
  private armFence(since: number): void {
    clearTimeout(this.fenceTimer);
    const delay = Math.max(0, since + this.holder.leaseMs / 2 - performance.now());
    this.fenceTimer = setTimeout(() => {
      this.lose(
        new WardenError(
          'WARDEN_E_REPO_LOCKED',
          `lost lock ${this.key}: it could not be renewed for ${this.holder.leaseMs / 2} ms`,
          {
            hint: 'The repository was unreachable or this process was paused; another process may hold the lock now.',
            details: { lock: this.key, lost: 'not renewed' },
            cause: this.lastError,
          },
        ),
      );
    }, delay);
    this.fenceTimer.unref();
  }

  private async renew(): Promise<void> {
    const started = performance.now();
    try {
      const current = await readLock(this.store, this.key);
      if (this.stopped) return;
      if (current?.holder?.token !== this.holder.token) {
        this.lose(
          new WardenError(
            'WARDEN_E_REPO_LOCKED',
            `lost lock ${this.key}: ${current ? `now held by ${describeHolder(current.holder)}` : 'it was removed'}`,
            {
              hint: 'Another process took the lock over after this one failed to renew it in time.',
              details: { lock: this.key, lost: current ? 'taken over' : 'removed', holder: current?.holder },
            },
          ),
        );
        return;
      }
      const now = Date.now();
      const next = {
        ...this.holder,
        renewedAt: new Date(now).toISOString(),
        expiresAt: new Date(now + this.holder.leaseMs).toISOString(),
      };
      await this.store.putBuffer(this.key, encodeHolder(next));
      if (this.stopped) return;
      this.holder = next;
      this.lastError = undefined;
      this.armFence(started);
    } catch (error) {
      // Retried on the next tick; the fence decides when failures have lasted too long.
      this.lastError = error;
    }
  }

  private lose(reason: WardenError): void {
    if (this.stopped) return;
    this.stopped = true;
    lostHere.add(this.holder.token);
    this.clearTimers();
    this.controller.abort(reason);
  }

  private clearTimers(): void {
    clearTimeout(this.renewTimer);
    clearTimeout(this.fenceTimer);
  }
}
