import type { Logger } from '../logger.ts';
import { readPatroniView, type PatroniSource, type PatroniView } from './patroni-topology.ts';

/** How the last refreshes went; `stats().topology` and the `warden_db_topology_*` metrics. */
export interface TopologyStats {
  /** Answers that validated (with or without a leader). */
  readonly refreshes: number;
  /** Rounds where no endpoint answered a valid document: the last good topology was kept. */
  readonly failures: number;
  /** Valid answers that named no running leader (a failover in progress): membership kept. */
  readonly leaderless: number;
  /** Endpoints that failed or answered an invalid document while another one answered. */
  readonly endpointFailures: number;
  /** Member entries left out of valid answers because they did not validate. */
  readonly ignoredMembers: number;
  /** Answers that changed the members or the leader. */
  readonly changes: number;
  /** The last failure (endpoint and reason per endpoint), cleared by the next success. */
  readonly lastError: string | undefined;
  /** `Date.now()` of the last valid answer. */
  readonly lastSuccessAt: number | undefined;
  readonly leader: string | undefined;
  readonly members: number;
}

export interface TopologyRefresherOptions {
  source: PatroniSource;
  /** Mean time between periodic reads; each wait is this ±20 %. */
  intervalMs: number;
  logger: Logger;
  /** Called with every valid answer that names a leader; returns true when it changed something. */
  apply: (view: PatroniView & { leader: NonNullable<PatroniView['leader']> }) => boolean;
}

/** On-demand reads closer together than this join the last one (a failing write burst asks once). */
const MIN_ON_DEMAND_GAP_MS = 250;

/**
 * Keeps the router's membership in step with Patroni: reads `GET /cluster` every interval (with
 * jitter, so application instances do not poll in step) and at once when the router asks
 * (a write found no primary or hit a read-only server). A failed or malformed read keeps the last
 * good topology and is counted and logged; it never throws to the caller.
 */
export class TopologyRefresher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<boolean> | undefined;
  private lastReadAt = 0;
  private stopped = false;
  private counters = {
    refreshes: 0,
    failures: 0,
    endpointFailures: 0,
    leaderless: 0,
    ignoredMembers: 0,
    changes: 0,
  };
  private lastError: string | undefined;
  private lastSuccessAt: number | undefined;
  private leader: string | undefined;
  private members = 0;

  constructor(private readonly options: TopologyRefresherOptions) {}

  /** Reads once (awaited), then periodically. Idempotent. */
  async start(): Promise<void> {
    if (this.timer || this.stopped) return;
    await this.refresh();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /**
   * Reads now, or joins the read in flight or the one that just finished. Resolves to whether the
   * answer named a leader.
   */
  refresh(): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    if (this.running) return this.running;
    if (Date.now() - this.lastReadAt < MIN_ON_DEMAND_GAP_MS)
      return Promise.resolve(this.leader !== undefined);
    this.running = this.readOnce().finally(() => {
      this.lastReadAt = Date.now();
      this.running = undefined;
    });
    return this.running;
  }

  stats(): TopologyStats {
    return {
      ...this.counters,
      lastError: this.lastError,
      lastSuccessAt: this.lastSuccessAt,
      leader: this.leader,
      members: this.members,
    };
  }

  private schedule(): void {
    if (this.stopped) return;
    const delay = this.options.intervalMs * (0.8 + Math.random() * 0.4);
    this.timer = setTimeout(() => {
      void this.refresh().finally(() => this.schedule());
    }, delay);
    this.timer.unref();
  }

  private async readOnce(): Promise<boolean> {
    let view: PatroniView;
    try {
      view = await readPatroniView(this.options.source);
    } catch (error) {
      this.counters.failures += 1;
      const details = (error as { details?: { failures?: unknown } }).details;
      this.lastError = Array.isArray(details?.failures) ? details.failures.join('; ') : String(error);
      this.options.logger.warn(
        { err: this.lastError, failures: this.counters.failures },
        'Patroni topology refresh failed; keeping the last good topology',
      );
      return false;
    }
    this.counters.refreshes += 1;
    this.lastSuccessAt = Date.now();
    this.lastError = undefined;
    if (view.endpointFailures.length > 0) {
      this.counters.endpointFailures += view.endpointFailures.length;
      this.options.logger.warn(
        { source: view.source, failed: view.endpointFailures },
        'Patroni endpoints failed or answered an invalid document; another one answered',
      );
    }
    if (view.ignored > 0) {
      this.counters.ignoredMembers += view.ignored;
      this.options.logger.warn(
        { source: view.source, ignored: view.ignored },
        'Patroni listed members that do not validate; they are left out',
      );
    }
    if (!view.leader) {
      this.counters.leaderless += 1;
      this.leader = undefined;
      this.options.logger.info({ source: view.source }, 'Patroni names no running leader right now');
      return false;
    }
    const leader = view.leader;
    this.leader = leader.name;
    const members = new Set([leader, ...view.replicas].map((m) => `${m.host}:${m.port}`));
    this.members = members.size;
    if (this.options.apply({ ...view, leader })) this.counters.changes += 1;
    return true;
  }
}
