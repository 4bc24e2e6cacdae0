import type { Logger } from 'pino';
import type { CachePlan } from '../cache-coherence/cache-config.ts';
import {
  invalidateCaches,
  recordedTimeline,
  recordTimeline,
  type InvalidationCause,
  type InvalidationReport,
} from '../cache-coherence/cache-invalidator.ts';
import { TimelineProbe } from '../cache-coherence/timeline-probe.ts';
import { toWardenError } from '../errors.ts';
import type { WardenEvents } from '../events/warden-events.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { backoffDelay, sleep } from '../util/backoff.ts';

export interface CacheCoherenceOptions {
  cluster: string;
  plan: CachePlan;
  connection: ConnectionConfig;
  events: WardenEvents;
  logger: Logger;
}

/**
 * Retries of an invalidation after a timeline change (Redis unreachable): 2 s doubling to 1 min,
 * ±50 % jitter, 12 attempts (about 8 min); `warden cache invalidate` covers a longer outage.
 */
const RETRY = { baseMs: 2_000, capMs: 60_000, attempts: 12 } as const;

/**
 * One cluster's cache coherence in the daemon: invalidates the applications' caches when the
 * cluster's timeline changes (a promotion: failover or switchover), whether the WAL receiver
 * publishes `timeline.changed` or the daemon's own poll of the server sees it first, and when an
 * operator announces a cut-over. Invalidations run one at a time.
 */
export class CacheCoherence {
  private readonly controller = new AbortController();
  private readonly probe: TimelineProbe;
  private readonly log: Logger;
  private timeline: number | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private loop: Promise<void> | undefined;
  private unsubscribe: (() => void) | undefined;
  last: InvalidationReport | undefined;

  constructor(private readonly options: CacheCoherenceOptions) {
    this.probe = new TimelineProbe(options.connection);
    this.log = options.logger.child({ cluster: options.cluster, component: 'cache-coherence' });
  }

  get cluster(): string {
    return this.options.cluster;
  }

  start(): void {
    if (this.loop) return;
    this.unsubscribe = this.options.events.on('timeline.changed', (event) => {
      if (event.cluster === this.options.cluster) this.observed(event.to, event.from);
    });
    this.loop = this.poll();
  }

  async stop(): Promise<void> {
    this.controller.abort();
    this.unsubscribe?.();
    await this.loop;
    await this.queue.catch(() => undefined);
    await this.probe.close();
  }

  /** An operator's cut-over (`warden cache invalidate`, `POST /api/cache/invalidate`). */
  invalidate(reason: string): Promise<InvalidationReport> {
    return this.enqueue({ kind: 'cut-over', reason, cluster: this.options.cluster });
  }

  /** A timeline seen by the poll or announced by an event; a new one invalidates (once). */
  private observed(timeline: number, from = this.timeline): void {
    if (this.timeline === timeline) return;
    this.timeline = timeline;
    if (from === undefined || from === timeline) return;
    this.log.warn({ from, to: timeline }, 'timeline changed: invalidating the caches');
    void this.withRetries({
      kind: 'timeline',
      reason: `timeline ${from} -> ${timeline}`,
      cluster: this.options.cluster,
      timeline,
    });
  }

  private async poll(): Promise<void> {
    const signal = this.controller.signal;
    while (!signal.aborted) {
      try {
        const timeline = await this.probe.read();
        if (timeline !== undefined) {
          if (this.timeline === undefined) await this.baseline(timeline);
          else this.observed(timeline);
        }
      } catch (error) {
        // The server is away (a failover in progress): the next read reconnects.
        this.log.debug({ code: toWardenError(error).code }, 'timeline read failed');
      }
      await sleep(this.options.plan.timelinePollMs, signal).catch(() => undefined);
    }
  }

  /** The first timeline read: one newer than the last invalidation's means a failover while stopped. */
  private async baseline(timeline: number): Promise<void> {
    const { plan } = this.options;
    // Redis unreachable: no baseline yet, the next read asks again.
    const recorded = await recordedTimeline(plan);
    if (this.timeline !== undefined) return; // an event came first
    if (recorded === undefined) {
      await recordTimeline(plan, timeline);
      this.timeline = timeline;
      return;
    }
    this.timeline = recorded;
    this.observed(timeline);
  }

  private async withRetries(cause: InvalidationCause): Promise<void> {
    for (let attempt = 0; attempt < RETRY.attempts && !this.controller.signal.aborted; attempt++) {
      try {
        await this.enqueue(cause);
        return;
      } catch {
        await sleep(backoffDelay(attempt, RETRY.baseMs, RETRY.capMs), this.controller.signal).catch(
          () => undefined,
        );
      }
    }
  }

  private enqueue(cause: InvalidationCause): Promise<InvalidationReport> {
    const run = this.queue.catch(() => undefined).then(() => this.run(cause));
    this.queue = run;
    return run;
  }

  private async run(cause: InvalidationCause): Promise<InvalidationReport> {
    const { events, cluster, plan } = this.options;
    try {
      const report = await invalidateCaches(plan, cause);
      this.last = report;
      const deletedKeys = Object.values(report.deleted).reduce((sum, n) => sum + n, 0);
      this.log.info(
        { kind: cause.kind, generation: report.generation, deletedKeys, durationMs: report.durationMs },
        `caches invalidated (${report.reason})`,
      );
      events.emit('cache.invalidated', {
        cluster,
        kind: cause.kind,
        reason: report.reason,
        generation: report.generation,
        deletedKeys,
        at: report.at,
        durationMs: report.durationMs,
      });
      return report;
    } catch (error) {
      const wrapped = toWardenError(error);
      this.log.error({ code: wrapped.code }, `cache invalidation failed: ${wrapped.message}`);
      events.emit('cache.invalidation-failed', {
        cluster,
        kind: cause.kind,
        at: new Date().toISOString(),
        error: { code: wrapped.code, message: wrapped.message },
      });
      throw wrapped;
    }
  }
}
