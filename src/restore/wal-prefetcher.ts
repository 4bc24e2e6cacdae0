import { setTimeout as sleep } from 'node:timers/promises';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { historyKey, readHistory } from '../repository/wal-archive.ts';
import { parseSegmentName, segmentName, segmentNumber, type Lsn } from '../wal/lsn.ts';
import { parseTimelineHistory } from '../wal/timeline-history.ts';
import { fetchSegment } from './wal-get.ts';
import type { WalSpool } from './wal-spool.ts';

export interface PrefetchOptions {
  store: ObjectStore;
  keys?: RepositoryKeys;
  /** The spool directory (`<root>/<key>`), made and checked by the fast path that started us. */
  spool: WalSpool;
  /** The segment the call that started us asked for. */
  first: string;
  /** Segments kept ready ahead of what recovery consumed (the spool's bound). */
  window: number;
  /** Exit after this long with nothing asked and nothing consumed. */
  idleMs: number;
  signal?: AbortSignal;
}

export interface PrefetchReport {
  /** Whether this process ran (false: another prefetcher holds the spool). */
  ran: boolean;
  fetched: number;
}

/** Segments fetched at once: decompression is CPU-bound, reading I/O-bound; a few overlap well. */
const CONCURRENCY = 4;
/** Between attempts at a segment the repository lacks or could not give: it may arrive (a standby's primary archives on). */
const RETRY_MS = 500;
const POLL_MS = 50;

/**
 * The background half of `warden wal get` (`warden wal prefetch`, started detached by the fast
 * path on a miss, bin/wal-get-fast.js): from the segment the last call asked for (`want`), it
 * keeps the next `window` segments of the recovery's timeline (following newer timelines as
 * their history files appear, the way PostgreSQL picks them with recovery_target_timeline =
 * latest) fetched, verified and decrypted in the spool, where the next calls find them without
 * loading the CLI. One per spool (a pid lock). It stops by itself once nothing was asked or
 * consumed for `idleMs` (recovery ended, the standby streams, or the archive ends there), and
 * then removes the whole spool.
 */
export async function prefetchWal(options: PrefetchOptions): Promise<PrefetchReport> {
  const { spool } = options;
  if (!(await spool.lock())) return { ran: false, fetched: 0 };
  let fetched = 0;
  try {
    const repository = await Repository.open(options.store, options.keys);
    const size = repository.meta.walSegmentSize;
    let plan: TimelinePlan | undefined;
    let wanted = '';
    let next = 0n;
    let seenWant = -1;
    let readyBefore = 0;
    let lastActivity = Date.now();
    while (!options.signal?.aborted && (await spool.holdsLock())) {
      // The segment we were started for, until a want file says otherwise (a prefetcher that
      // was stopping may have removed the want written for us).
      const want = (await spool.want()) ?? (seenWant === -1 ? { segment: options.first, at: 0 } : undefined);
      const parsed = want && want.at !== seenWant ? parseSegmentName(want.segment, size) : undefined;
      if (want && parsed) {
        seenWant = want.at;
        wanted = want.segment;
        next = segmentNumber(parsed.startLsn, size);
        plan = new TimelinePlan(repository, parsed.timeline, size);
        lastActivity = Date.now();
        const from = next;
        await spool.prune((name) => inWindow(name, from, options.window, size));
      }
      const ready = await spool.ready();
      if (ready.length < readyBefore) lastActivity = Date.now();
      readyBefore = ready.length;
      if (!plan || ready.length >= options.window) {
        if (Date.now() - lastActivity > options.idleMs) break;
        await sleep(POLL_MS, undefined, { signal: options.signal }).catch(() => undefined);
        continue;
      }
      // The next few segments, fetched together, stored in order; the first one missing (or
      // failing) gets a verdict and is tried again later.
      const count = Math.min(CONCURRENCY, options.window - ready.length);
      const names = Array.from({ length: count }, (_, i) =>
        next === segmentNumberOf(wanted, size) && i === 0 ? wanted : plan!.nameFor(next + BigInt(i)),
      );
      const started = Date.now();
      const results = await Promise.allSettled(names.map((name) => fetchByName(repository, name, size)));
      let stored = 0;
      for (const [i, result] of results.entries()) {
        const name = names[i]!;
        if (result.status === 'fulfilled' && result.value) {
          if (!ready.includes(name)) await spool.put(name, result.value);
          stored += 1;
          continue;
        }
        if (result.status === 'fulfilled' && name !== wanted && (await plan.refresh())) break;
        await spool.verdict(
          result.status === 'fulfilled'
            ? { segment: name, at: started, missing: true }
            : { segment: name, at: started, error: errorCode(result.reason) },
        );
        break;
      }
      next += BigInt(stored);
      fetched += stored;
      readyBefore += stored;
      if (stored < names.length) {
        if (Date.now() - lastActivity > options.idleMs) break;
        await sleep(RETRY_MS, undefined, { signal: options.signal }).catch(() => undefined);
      }
    }
  } finally {
    await spool.close();
  }
  return { ran: true, fetched };
}

function segmentNumberOf(name: string, size: number): bigint {
  const parsed = parseSegmentName(name, size);
  return parsed ? segmentNumber(parsed.startLsn, size) : -1n;
}

function inWindow(name: string, from: bigint, window: number, size: number): boolean {
  const number = segmentNumberOf(name, size);
  return number >= from && number < from + BigInt(window);
}

async function fetchByName(repository: Repository, name: string, size: number): Promise<Buffer | undefined> {
  const parsed = parseSegmentName(name, size)!;
  return fetchSegment(repository, parsed.timeline, name);
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'WARDEN_E_INTERNAL';
}

/**
 * Which timeline a segment is read from, as PostgreSQL's XLogFileReadAnyTLI picks it: the newest
 * timeline of the recovery target's history whose start is in or before that segment. The
 * target is the newest timeline descending from the one recovery asked for (the
 * recovery_target_timeline = latest that `warden restore --standby` writes), found the way
 * PostgreSQL's findNewestTimeLine does: `<TLI+1>.history`, `<TLI+2>.history`, … until one is
 * missing.
 */
class TimelinePlan {
  /** Timelines of the target's history, oldest first, each with the LSN where it starts. */
  private chain: Array<{ timeline: number; begin: Lsn }>;

  constructor(
    private readonly repository: Repository,
    private readonly start: number,
    private readonly size: number,
  ) {
    this.chain = [{ timeline: start, begin: 0n }];
  }

  nameFor(segment: bigint): string {
    const newest =
      [...this.chain].reverse().find((each) => segmentNumber(each.begin, this.size) <= segment) ??
      this.chain[0]!;
    return segmentName(newest.timeline, segment * BigInt(this.size), this.size);
  }

  /** Looks for a newer target timeline; true when one was found (names may change). */
  async refresh(): Promise<boolean> {
    const current = this.chain.at(-1)!.timeline;
    let found = false;
    for (let timeline = current + 1; await this.repository.store.stat(historyKey(timeline)); timeline += 1) {
      const history = parseTimelineHistory((await readHistory(this.repository, timeline)).toString('utf8'));
      if (!history.some((entry) => entry.timeline === this.start)) continue;
      this.chain = [
        ...history.map((entry, i) => ({ timeline: entry.timeline, begin: history[i - 1]?.switchLsn ?? 0n })),
        { timeline, begin: history.at(-1)!.switchLsn },
      ].filter((each) => each.timeline >= this.start);
      found = true;
    }
    return found;
  }
}
