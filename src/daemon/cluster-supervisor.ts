import type { Logger } from 'pino';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { WalReceiver, type WalReceiverStatus } from '../backup/wal-receiver.ts';
import { isWardenError } from '../errors.ts';
import type { EventPublisher, EventSubject } from '../events/warden-events.ts';
import type { Compression } from '../pipeline/compression.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { lockHolder } from '../repository/repository-lock.ts';
import { AdvisoryJobLock } from '../scheduler/job-lock.ts';
import { Scheduler, type JobStatus } from '../scheduler/scheduler.ts';
import { backoffDelay, sleep } from '../util/backoff.ts';
import type { ClusterPlan } from './daemon-config.ts';
import { HeartbeatWriter } from '../postgres/heartbeat.ts';
import { buildGapBackupJob, buildJobs, GAP_BACKUP_JOB, unresolvedWalGaps } from './jobs.ts';
import { describeGap, type WalGapRecord } from '../repository/wal-gap-incidents.ts';
import { META_KEY } from '../repository/repository-meta.ts';
import { recordObjectives } from './recorded-objectives.ts';

export interface SupervisorOptions {
  plan: ClusterPlan;
  connection: ConnectionConfig;
  store: ObjectStore;
  compression: Compression;
  keys?: RepositoryKeys;
  logger: Logger;
  tickMs?: number;
  retryBaseMs?: number;
  daemonId?: string;
  /** Where this cluster's use cases publish (subject: the cluster's name and repository). */
  events?: EventPublisher;
}

/**
 * Everything the daemon does for one cluster: keeps the WAL receiver running (or stands by while
 * another daemon's receiver holds the repository's stream lock), writes the heartbeat, and runs
 * the scheduled jobs.
 */
export class ClusterSupervisor {
  private readonly controller = new AbortController();
  private readonly scheduler: Scheduler;
  private readonly lock: AdvisoryJobLock;
  private readonly heartbeat: HeartbeatWriter | undefined;
  private receiver: WalReceiver | undefined;
  private receiverLoop: Promise<void> | undefined;
  private recording: Promise<void> | undefined;
  private standby: string | undefined;
  private receiverError: { code: string; message: string } | undefined;
  private started = false;
  /** Who this cluster's events are about. */
  readonly subject: EventSubject;

  constructor(private readonly options: SupervisorOptions) {
    const logger = options.logger.child({ cluster: options.plan.name });
    this.lock = new AdvisoryJobLock(options.connection, options.store.location);
    this.subject = { cluster: options.plan.name, repository: options.store.location };
    const observed = options.events ? { events: options.events, eventSubject: this.subject } : {};
    this.scheduler = new Scheduler({
      jobs: buildJobs({ ...options, logger, ...observed }),
      onDemand: [buildGapBackupJob({ ...options, logger, ...observed })],
      ...observed,
      store: options.store,
      lock: this.lock,
      logger,
      ...(options.tickMs !== undefined ? { tickMs: options.tickMs } : {}),
      ...(options.retryBaseMs !== undefined ? { retryBaseMs: options.retryBaseMs } : {}),
      ...(options.daemonId ? { daemonId: options.daemonId } : {}),
    });
    this.heartbeat = options.plan.heartbeat ? new HeartbeatWriter(options.connection, { logger }) : undefined;
  }

  get plan(): ClusterPlan {
    return this.options.plan;
  }

  /** The cluster's repository store, the one its jobs and WAL stream use. */
  get store(): ObjectStore {
    return this.options.store;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.options.plan.walStreaming) this.receiverLoop = this.keepReceiving();
    // A gap recorded before this start (a stream stopped with it, or a daemon stopped before
    // its backup) is resolved now, not at the next scheduled full backup.
    void unresolvedWalGaps(this.options.store)
      .then((gaps) => {
        if (gaps.length > 0 && !this.controller.signal.aborted)
          this.scheduler.requestRun(
            GAP_BACKUP_JOB,
            `unresolved WAL gap ${gaps.map((g) => `${g.from}..${g.to}`).join(', ')}: a full backup after it makes restores reach past it`,
          );
      })
      .catch((error: unknown) =>
        this.options.logger.warn({ error: String(error) }, 'could not read recorded WAL gaps'),
      );
    this.recording = this.recordObjectivesOnce();
    this.heartbeat?.start();
    this.scheduler.start();
  }

  /** Stops jobs first (a running one abandons cleanly), then the stream and the heartbeat. */
  async stop(): Promise<void> {
    this.controller.abort();
    await this.scheduler.stop();
    await this.receiverLoop;
    await this.recording;
    await this.heartbeat?.stop();
    await this.lock.close();
  }

  receiverStatus(): (WalReceiverStatus & { standby?: string }) | undefined {
    if (!this.options.plan.walStreaming) return undefined;
    if (this.standby) return { state: 'idle', standby: this.standby };
    const status = this.receiver?.status() ?? { state: 'idle' as const };
    return this.receiverError && status.state !== 'streaming'
      ? { ...status, lastError: this.receiverError }
      : status;
  }

  jobs(): JobStatus[] {
    return this.scheduler.status();
  }

  private gapRecorded(gap: WalGapRecord): void {
    this.scheduler.requestRun(
      GAP_BACKUP_JOB,
      `${describeGap(gap)} recorded: a full backup now, so restores reach past it`,
    );
  }

  /**
   * Records this daemon's profile and objectives in the repository (once it exists: the stream
   * or the first backup creates it), so `warden status` without this config judges by them too.
   */
  private async recordObjectivesOnce(): Promise<void> {
    const signal = this.controller.signal;
    const { store, plan } = this.options;
    while (!signal.aborted) {
      try {
        if (await store.stat(META_KEY)) {
          await recordObjectives(store, plan);
          return;
        }
      } catch (error) {
        this.options.logger.warn({ err: (error as Error).message }, 'could not record the objectives');
      }
      await sleep(2_000, signal).catch(() => undefined);
    }
  }

  private async keepReceiving(): Promise<void> {
    const signal = this.controller.signal;
    const logger = this.options.logger.child({ cluster: this.options.plan.name, component: 'wal' });
    for (let attempt = 0; !signal.aborted; attempt += 1) {
      this.receiver = new WalReceiver({
        connection: this.options.connection,
        store: this.options.store,
        slotName: this.options.plan.slot,
        ...(this.options.keys ? { keys: this.options.keys } : {}),
        logger,
        signal,
        // The daemon never stops streaming over a gap: it records it and takes a full backup.
        continueAfterGap: true,
        onGap: (gap) => this.gapRecorded(gap),
        ...(this.options.events ? { events: this.options.events, eventSubject: this.subject } : {}),
      });
      let delay: number;
      try {
        this.standby = undefined;
        await this.receiver.run();
        continue;
      } catch (error) {
        if (isWardenError(error, 'WARDEN_E_REPO_LOCKED')) {
          // Another daemon streams this cluster: stand by and take over when its lock goes.
          const holder = await lockHolder(this.options.store, 'wal-stream').catch(() => undefined);
          this.standby = holder ? `pid ${holder.pid} on ${holder.host}` : 'another process';
          delay = 5_000;
          attempt = 0;
        } else {
          this.receiverError = isWardenError(error)
            ? { code: error.code, message: error.message }
            : { code: 'WARDEN_E_INTERNAL', message: String(error) };
          // Configuration-type failures (auth, role): retry slowly, 5 s doubling to 5 min, ±50 %.
          delay = backoffDelay(attempt, 5_000, 300_000);
          logger.error(
            { code: this.receiverError.code, retryInMs: delay },
            `WAL receiver stopped: ${this.receiverError.message}`,
          );
        }
      }
      await sleep(delay, signal).catch(() => undefined);
    }
  }
}
