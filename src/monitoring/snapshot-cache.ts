import type { Logger } from 'pino';
import { silentLogger } from '../logger.ts';
import { sleep } from '../util/backoff.ts';
import type { ClusterSnapshot } from './cluster-snapshot.ts';

/** The shortest pause between two rounds, whatever asks for more. */
const MIN_PAUSE_MS = 1_000;

export interface SnapshotCacheOptions {
  /** The clusters, each with how to collect its snapshot (reads the repository and the server). */
  sources: ReadonlyArray<{ cluster: string; collect(signal: AbortSignal): Promise<ClusterSnapshot> }>;
  /**
   * Pause between two refreshes of every cluster (default 30 s); at least twice the last round's
   * duration, and a requested refresh waits that long too.
   */
  intervalMs?: number;
  /** A collection taking longer is abandoned for this round; the previous snapshot stays (default 60 s). */
  timeoutMs?: number;
  logger?: Logger;
}

/**
 * The bounded, cached part of the metrics: one background loop collects the clusters' snapshots
 * one after another, then pauses; a scrape reads whatever is cached. So the cost to the store and
 * the database is one collection per cluster per interval, whatever the scrape rate, and a slow
 * repository slows the refresh, never a scrape.
 */
export class SnapshotCache {
  private readonly snapshots = new Map<string, ClusterSnapshot>();
  private readonly controller = new AbortController();
  private loop: Promise<void> | undefined;
  private lastRefresh: number | undefined;
  /** Ends the current pause early (`requestRefresh`). */
  private wake = new AbortController();
  private requested = false;
  private readonly logger: Logger;

  constructor(private readonly options: SnapshotCacheOptions) {
    this.logger = options.logger ?? silentLogger;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.controller.abort();
    await this.loop;
  }

  /**
   * Asks for a round soon (the repository changed: a job finished). Requests during a round or a
   * pause collapse into one round, at most one per second, so a burst of events costs one.
   */
  requestRefresh(): void {
    this.requested = true;
    this.wake.abort();
  }

  /** The cached snapshots (a cluster not collected yet is absent). */
  current(): ClusterSnapshot[] {
    return [...this.snapshots.values()];
  }

  /** When the last round over every cluster finished (Unix seconds). */
  refreshedAt(): number | undefined {
    return this.lastRefresh;
  }

  /** One round over every cluster (the loop's body; tests call it to refresh now). */
  async refresh(): Promise<void> {
    const signal = this.controller.signal;
    for (const source of this.options.sources) {
      if (signal.aborted) return;
      const round = AbortSignal.any([signal, AbortSignal.timeout(this.options.timeoutMs ?? 60_000)]);
      try {
        const snapshot = await Promise.race([
          source.collect(round),
          new Promise<never>((_, reject) =>
            round.addEventListener('abort', () => reject(new Error('snapshot collection timed out')), {
              once: true,
            }),
          ),
        ]);
        this.snapshots.set(source.cluster, snapshot);
      } catch (error) {
        if (!signal.aborted)
          this.logger.warn(
            { cluster: source.cluster, err: (error as Error).message },
            'metrics: could not refresh the cluster snapshot; the previous one stays',
          );
      }
    }
    this.lastRefresh = Date.now() / 1000;
  }

  private async run(): Promise<void> {
    const signal = this.controller.signal;
    while (!signal.aborted) {
      this.requested = false;
      const started = performance.now();
      await this.refresh();
      // A large catalog makes a round long: the pauses are at least twice as long as the round,
      // so reading the repositories takes at most a third of the daemon's time.
      const tookMs = performance.now() - started;
      await sleep(Math.max(MIN_PAUSE_MS, 2 * tookMs), signal).catch(() => undefined);
      if (this.requested) continue;
      this.wake = new AbortController();
      const pause = AbortSignal.any([signal, this.wake.signal]);
      const rest =
        Math.max(this.options.intervalMs ?? 30_000, 2 * tookMs) - Math.max(MIN_PAUSE_MS, 2 * tookMs);
      await sleep(Math.max(0, rest), pause).catch(() => undefined);
    }
  }
}
