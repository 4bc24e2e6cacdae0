import type { Logger } from 'pino';
import type { DashboardPlan } from './dashboard-config.ts';
import type { DaemonStatus } from './status.ts';
import { StatusHistory } from './status-history.ts';

/**
 * Samples the daemon's live status every `historyIntervalMs` into a {@link StatusHistory}, for
 * the dashboard's lag and RPO charts. One sample at a time: a slow status (an unreachable server
 * waits for its connect timeout) delays the next sample instead of piling them up.
 */
export class StatusSampler {
  readonly history: StatusHistory;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly plan: DashboardPlan,
    private readonly status: () => Promise<DaemonStatus>,
    private readonly logger: Logger,
  ) {
    this.history = new StatusHistory(plan.historyIntervalMs, plan.historyWindowMs);
  }

  start(): void {
    if (this.running || this.stopped) return;
    this.sample();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private sample(): void {
    const startedAt = Date.now();
    this.running = this.status()
      .then((status) => this.history.record(status))
      .catch((error: unknown) => this.logger.warn({ err: (error as Error).message }, 'status sample failed'))
      .finally(() => {
        if (this.stopped) return;
        const wait = Math.max(0, this.plan.historyIntervalMs - (Date.now() - startedAt));
        this.timer = setTimeout(() => this.sample(), wait);
        this.timer.unref();
      });
  }
}
