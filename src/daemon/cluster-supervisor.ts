import type { Logger } from 'pino';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { WalReceiver, type WalReceiverStatus } from '../backup/wal-receiver.ts';
import { isWardenError } from '../errors.ts';
import type { Compression } from '../pipeline/compression.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { lockHolder } from '../repository/repository-lock.ts';
import { AdvisoryJobLock } from '../scheduler/job-lock.ts';
import { Scheduler, type JobStatus } from '../scheduler/scheduler.ts';
import { backoffDelay, sleep } from '../util/backoff.ts';
import type { ClusterPlan } from './daemon-config.ts';
import { HeartbeatWriter } from './heartbeat.ts';
import { buildJobs } from './jobs.ts';

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
  private standby: string | undefined;
  private receiverError: { code: string; message: string } | undefined;
  private started = false;

  constructor(private readonly options: SupervisorOptions) {
    const logger = options.logger.child({ cluster: options.plan.name });
    this.lock = new AdvisoryJobLock(options.connection, options.store.location);
    this.scheduler = new Scheduler({
      jobs: buildJobs({ ...options, logger }),
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

  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.options.plan.walStreaming) this.receiverLoop = this.keepReceiving();
    this.heartbeat?.start();
    this.scheduler.start();
  }

  /** Stops jobs first (a running one abandons cleanly), then the stream and the heartbeat. */
  async stop(): Promise<void> {
    this.controller.abort();
    await this.scheduler.stop();
    await this.receiverLoop;
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
