import os from 'node:os';
import type { Logger } from 'pino';
import { isWardenError, toWardenError, WardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { subjectOf, type ObservedOptions } from '../events/observed.ts';
import { backoffDelay, sleep } from '../util/backoff.ts';
import type { JobLock } from './job-lock.ts';
import { readJobState, recordJobRun, type JobRun } from './job-state.ts';
import type { Schedule } from './schedule.ts';

export interface JobOutcome {
  status: 'succeeded' | 'failed' | 'skipped';
  detail?: string;
  error?: { code: string; message: string };
}

export interface JobDefinition {
  /** Stable name: the lock key and the state file (`daemon/jobs/<name>.json`). */
  name: string;
  schedule: Schedule;
  run(context: { slot: Date; signal: AbortSignal }): Promise<JobOutcome>;
  /** A reason when the slot needs no run (e.g. a newer backup already exists). */
  satisfied?(slot: Date): Promise<string | undefined>;
}

/** A job without a schedule, run when asked (`requestRun`): e.g. the full backup after a WAL gap. */
export type OnDemandJob = Omit<JobDefinition, 'schedule'>;

/** `events`: a `job.finished` for every run that finished (succeeded, failed, skipped). */
export interface SchedulerOptions extends ObservedOptions {
  jobs: readonly JobDefinition[];
  onDemand?: readonly OnDemandJob[];
  store: ObjectStore;
  lock: JobLock;
  logger?: Logger;
  /** How often due slots are checked (default 1 s). */
  tickMs?: number;
  /** First retry delay for a job that failed transiently (default 10 s; doubles, capped at 10 min). */
  retryBaseMs?: number;
  /** Attempts per slot before the slot is given up as failed (default 6). */
  maxAttempts?: number;
  daemonId?: string;
}

export interface JobStatus {
  name: string;
  schedule: string;
  timezone: string;
  nextRun?: string;
  running: boolean;
  lastRun?: JobRun;
  lastSuccess?: JobRun;
  /** An on-demand job asked for and not yet run: when and why. */
  requested?: { at: string; reason: string };
  /** Set while a transiently failed slot waits to be retried. */
  retry?: { at: string; attempt: number; error: { code: string; message: string } };
}

interface Pending {
  slot: number;
  attempt: number;
  retryAt: number;
  error: { code: string; message: string };
}

/**
 * Runs jobs at their cron slots, one at a time, on whichever daemon takes the job's lock first.
 * The slot logic: a job is due when its most recent slot is newer than the last slot recorded
 * in the repository. So a restart catches up a missed slot once (older missed slots collapse
 * into it), and a slot another daemon handled is not run again.
 */
export class Scheduler {
  private readonly logger: Logger;
  private readonly handled = new Map<string, number>();
  private readonly pending = new Map<string, Pending>();
  private readonly lastRuns = new Map<string, { lastRun?: JobRun; lastSuccess?: JobRun }>();
  private readonly stopController = new AbortController();
  private loop: Promise<void> | undefined;
  private runningJob: string | undefined;
  private readonly requested = new Map<string, { at: number; reason: string }>();
  readonly daemonId: string;

  constructor(private readonly options: SchedulerOptions) {
    this.logger = options.logger ?? silentLogger;
    this.daemonId = options.daemonId ?? `${os.hostname()}:${process.pid}`;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /**
   * Stops scheduling. The running job sees its signal aborted and abandons cleanly (a backup
   * deletes what it wrote); its slot stays open and is caught up on the next start.
   */
  async stop(): Promise<void> {
    this.stopController.abort();
    await this.loop;
  }

  /**
   * Runs an on-demand job at the next tick, before scheduled ones (one request at a time per
   * job: asking again while one waits keeps the first). Its run is recorded like a scheduled
   * one, under its own name, with the request's time as its slot.
   */
  requestRun(name: string, reason: string): void {
    if (!this.options.onDemand?.some((job) => job.name === name))
      throw new WardenError('WARDEN_E_INTERNAL', `no on-demand job named ${name}`);
    if (this.requested.has(name)) return;
    this.requested.set(name, { at: Date.now(), reason });
    this.logger.warn({ job: name, reason }, `job ${name} requested: ${reason}`);
  }

  status(now = new Date()): JobStatus[] {
    return [...this.scheduledStatus(now), ...this.onDemandStatus()];
  }

  private onDemandStatus(): JobStatus[] {
    return (this.options.onDemand ?? []).map((job) => {
      const request = this.requested.get(job.name);
      const runs = this.lastRuns.get(job.name);
      const pending = this.pending.get(job.name);
      return {
        name: job.name,
        schedule: 'on demand',
        timezone: '-',
        running: this.runningJob === job.name,
        ...(request ? { requested: { at: new Date(request.at).toISOString(), reason: request.reason } } : {}),
        ...(runs?.lastRun ? { lastRun: runs.lastRun } : {}),
        ...(runs?.lastSuccess ? { lastSuccess: runs.lastSuccess } : {}),
        ...(pending
          ? {
              retry: {
                at: new Date(pending.retryAt).toISOString(),
                attempt: pending.attempt,
                error: pending.error,
              },
            }
          : {}),
      };
    });
  }

  private scheduledStatus(now: Date): JobStatus[] {
    return this.options.jobs.map((job) => {
      const next = job.schedule.next(now);
      const pending = this.pending.get(job.name);
      const runs = this.lastRuns.get(job.name);
      return {
        name: job.name,
        schedule: job.schedule.pattern,
        timezone: job.schedule.timezone,
        ...(next ? { nextRun: next.toISOString() } : {}),
        running: this.runningJob === job.name,
        ...(runs?.lastRun ? { lastRun: runs.lastRun } : {}),
        ...(runs?.lastSuccess ? { lastSuccess: runs.lastSuccess } : {}),
        ...(pending
          ? {
              retry: {
                at: new Date(pending.retryAt).toISOString(),
                attempt: pending.attempt,
                error: pending.error,
              },
            }
          : {}),
      };
    });
  }

  private async run(): Promise<void> {
    const signal = this.stopController.signal;
    while (!signal.aborted) {
      for (const job of this.options.onDemand ?? []) {
        if (signal.aborted) break;
        if (this.requested.has(job.name)) await this.runRequested(job, signal);
      }
      for (const job of this.options.jobs) {
        if (signal.aborted) break;
        await this.maybeRun(job, signal);
      }
      await sleep(this.options.tickMs ?? 1000, signal).catch(() => undefined);
    }
  }

  private async maybeRun(job: JobDefinition, signal: AbortSignal): Promise<void> {
    const now = Date.now();
    const slot = job.schedule.latestDue(new Date(now))?.getTime();
    if (slot === undefined || slot <= (this.handled.get(job.name) ?? -Infinity)) return;
    const pending = this.pending.get(job.name);
    if (pending && pending.slot === slot && now < pending.retryAt) return;
    let release: (() => Promise<void>) | undefined;
    try {
      release = await this.options.lock.tryAcquire(job.name);
      if (!release) return; // another daemon runs it; its state tells us when it is done
      const state = await readJobState(this.options.store, job.name);
      this.lastRuns.set(job.name, {
        ...(state.lastRun ? { lastRun: state.lastRun } : {}),
        ...(state.lastSuccess ? { lastSuccess: state.lastSuccess } : {}),
      });
      const done = state.lastSlot ? Date.parse(state.lastSlot) : -Infinity;
      if (done >= slot) {
        this.handled.set(job.name, done);
        return;
      }
      await this.execute(job, new Date(slot), signal);
    } catch (error) {
      // The lock or the repository is unreachable: try again later, nothing was run.
      this.deferAfterError(job.name, slot, toWardenError(error));
    } finally {
      await release?.().catch(() => undefined);
    }
  }

  /** One requested on-demand job, under its lock; a transient failure is retried like a slot's. */
  private async runRequested(job: OnDemandJob, signal: AbortSignal): Promise<void> {
    const request = this.requested.get(job.name)!;
    const pending = this.pending.get(job.name);
    if (pending && Date.now() < pending.retryAt) return;
    let release: (() => Promise<void>) | undefined;
    try {
      release = await this.options.lock.tryAcquire(job.name);
      if (!release) return; // another daemon runs it now: asked again at the next tick
      await this.execute(job, new Date(request.at), signal);
      if (!this.pending.has(job.name) && !signal.aborted) this.requested.delete(job.name);
    } catch (error) {
      this.deferAfterError(job.name, request.at, toWardenError(error));
    } finally {
      await release?.().catch(() => undefined);
    }
  }

  private async execute(job: OnDemandJob, slot: Date, signal: AbortSignal): Promise<void> {
    const startedAt = new Date();
    const base = { slot: slot.toISOString(), startedAt: startedAt.toISOString(), daemon: this.daemonId };
    this.runningJob = job.name;
    let outcome: JobOutcome;
    try {
      const reason = await job.satisfied?.(slot);
      outcome = reason ? { status: 'skipped', detail: reason } : await job.run({ slot, signal });
    } catch (error) {
      if (signal.aborted) {
        this.logger.info({ job: job.name, slot: base.slot }, 'job abandoned on shutdown; slot stays open');
        return;
      }
      const wrapped = toWardenError(error);
      const attempt =
        (this.pending.get(job.name)?.slot === slot.getTime() ? this.pending.get(job.name)!.attempt : 0) + 1;
      const err = { code: wrapped.code, message: wrapped.message };
      const retry = wrapped.retryable && attempt < (this.options.maxAttempts ?? 6);
      const run: JobRun = { ...base, finishedAt: new Date().toISOString(), status: 'failed', error: err };
      this.publish(job.name, run, startedAt);
      this.logger.error(
        { job: job.name, slot: base.slot, code: err.code, attempt, retry },
        `job failed: ${err.message}`,
      );
      await this.record(job.name, run, !retry);
      if (retry) this.deferAfterError(job.name, slot.getTime(), wrapped, attempt);
      else this.pending.delete(job.name);
      return;
    } finally {
      this.runningJob = undefined;
    }
    const run: JobRun = { ...base, finishedAt: new Date().toISOString(), ...outcome };
    this.publish(job.name, run, startedAt);
    this.logger[outcome.status === 'failed' ? 'error' : 'info'](
      { job: job.name, slot: base.slot, status: outcome.status, detail: outcome.detail },
      `job ${job.name} ${outcome.status}`,
    );
    this.pending.delete(job.name);
    await this.record(job.name, run, true);
  }

  /** Published before the run is recorded: a repository that cannot take the record still shows the run. */
  private publish(job: string, run: JobRun, startedAt: Date): void {
    this.options.events?.emit('job.finished', {
      ...subjectOf(this.options, this.options.store),
      job,
      outcome: run.status,
      at: run.finishedAt,
      durationMs: Date.parse(run.finishedAt) - startedAt.getTime(),
      ...(run.detail ? { detail: run.detail } : {}),
      ...(run.error ? { error: run.error } : {}),
    });
  }

  private async record(job: string, run: JobRun, done: boolean): Promise<void> {
    const state = await recordJobRun(this.options.store, job, run, done);
    if (done) this.handled.set(job, Date.parse(run.slot));
    this.lastRuns.set(job, {
      ...(state.lastRun ? { lastRun: state.lastRun } : {}),
      ...(state.lastSuccess ? { lastSuccess: state.lastSuccess } : {}),
    });
  }

  private deferAfterError(
    job: string,
    slot: number,
    error: { code: string; message: string },
    attempt = (this.pending.get(job)?.attempt ?? 0) + 1,
  ): void {
    // Retry schedule: 10 s, 20 s, 40 s, ... capped at 10 min, each ±50 % jitter.
    const delay = backoffDelay(attempt - 1, this.options.retryBaseMs ?? 10_000, 600_000);
    this.pending.set(job, {
      slot,
      attempt,
      retryAt: Date.now() + delay,
      error: { code: error.code, message: error.message },
    });
    if (!isWardenError(error)) return;
    this.logger.warn({ job, code: error.code, retryInMs: delay }, `job ${job} deferred: ${error.message}`);
  }
}
