import type { Logger } from 'pino';
import { isWardenError, WardenError } from '../errors.ts';
import { noEvents, type EventPublisher, type EventSubject } from '../events/warden-events.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { SigningKey } from '../pipeline/signing/signing-keys.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { copyAuditLog } from './audit-log-copy.ts';
import { copyRepository } from '../repository/repository-copy.ts';
import { META_KEY } from '../repository/repository-meta.ts';
import { backoffDelay, sleep } from '../util/backoff.ts';
import type { CopyTargetPlan } from './copy-target-plan.ts';
import { lagSecondsBetween, type CopyTargetStatus } from './copy-target-status.ts';
import { transitionStorageClasses } from './storage-transition.ts';

export interface ContinuousCopyOptions {
  subject: EventSubject;
  source: ObjectStore;
  target: CopyTargetPlan;
  /** Opened on the first pass (no I/O before `start()`). */
  openTarget: () => ObjectStore | Promise<ObjectStore>;
  keys?: RepositoryKeys;
  signingKey?: SigningKey;
  events?: EventPublisher;
  logger: Logger;
  /** First retry delay after a failed pass (default 1 s); the cap is 64 times it. */
  retryBaseMs?: number;
  /** How often the storage-class transition runs on the target (default 1 h; only with rules). */
  transitionEveryMs?: number;
}

const DEFAULT_RETRY_BASE_MS = 1000;
const DEFAULT_TRANSITION_EVERY_MS = 3_600_000;

/**
 * Keeps one `copyTo` target in step with the cluster's repository: a pass (`copyRepository`:
 * verified, resumable, commit markers last) every `intervalMs`, or sooner when `poke()`d after
 * a backup or a WAL segment; a failed pass is retried with exponential backoff and ±50 % jitter
 * (1 s, 2 s, 4 s … capped at 64 s with the defaults), logged each time and published once per
 * outage (`copy.failed`, then `copy.caught-up`). Each pass copies everything the target lacks,
 * so an outage leaves no gap once the target is back.
 */
export class ContinuousCopy {
  private readonly controller = new AbortController();
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private poked = false;
  private store: ObjectStore | undefined;
  private startedAt = new Date();
  private lastTransitionMs = 0;
  private state: Omit<CopyTargetStatus, 'lagSeconds'>;
  private readonly logger: Logger;

  constructor(private readonly options: ContinuousCopyOptions) {
    this.logger = options.logger.child({ component: 'copy', target: options.target.name });
    this.state = {
      target: options.target.name,
      location: options.target.location.path,
      state: 'starting',
      failedAttempts: 0,
      copied: { backups: 0, segments: 0, dumps: 0, bytes: 0 },
    };
  }

  get name(): string {
    return this.options.target.name;
  }

  start(): void {
    if (this.loop || this.controller.signal.aborted) return;
    this.startedAt = new Date();
    this.loop = this.run();
  }

  /** Asks for a pass now (something was committed); a pass under way is not interrupted. */
  poke(): void {
    this.poked = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.controller.abort();
    this.wake?.();
    await this.loop;
  }

  status(now = new Date()): CopyTargetStatus {
    const since = this.state.caughtUpAt ? new Date(this.state.caughtUpAt) : this.startedAt;
    return { ...this.state, lagSeconds: lagSecondsBetween(since, now) };
  }

  /** One pass, as the loop runs it; exported for tests and `warden repo copy`-like callers. */
  async pass(): Promise<void> {
    const { signal } = this.controller;
    const started = new Date();
    this.store ??= await this.options.openTarget();
    // Nothing committed yet (no stream or backup has created the repository): nothing to copy.
    if (await this.options.source.stat(META_KEY)) {
      const report = await copyRepository(this.options.source, this.store, {
        ...(this.options.keys ? { keys: this.options.keys } : {}),
        ...(this.options.signingKey ? { signingKey: this.options.signingKey } : {}),
        storageClasses: this.options.target.storageClasses,
        now: started,
        signal,
      });
      const copied = this.state.copied;
      copied.backups += report.backups.length;
      copied.segments += report.segments;
      copied.dumps += report.dumps.length;
      copied.bytes += report.bytes;
      // The audit log last: its records are hash-chained and the signed head goes after them.
      await copyAuditLog(this.options.source, this.store);
      if (report.backups.length || report.segments || report.dumps.length)
        this.logger.debug({ report }, 'copied to the target');
    }
    await this.maybeTransition(started);
    const failed = this.state.failedAttempts;
    this.state = {
      ...this.state,
      state: 'caught-up',
      caughtUpAt: started.toISOString(),
      lastSuccessAt: new Date().toISOString(),
      failedAttempts: 0,
    };
    delete this.state.nextAttemptAt;
    if (failed > 0) {
      this.logger.info({ failedAttempts: failed }, 'copy target caught up after failures');
      this.events.emit('copy.caught-up', {
        ...this.options.subject,
        target: this.name,
        at: this.state.lastSuccessAt!,
        failedAttempts: failed,
        lagSeconds: lagSecondsBetween(started, new Date()),
      });
    }
  }

  private get events(): EventPublisher {
    return this.options.events ?? noEvents;
  }

  private async maybeTransition(now: Date): Promise<void> {
    const every = this.options.transitionEveryMs ?? DEFAULT_TRANSITION_EVERY_MS;
    if (!this.options.target.storageClasses.length || now.getTime() - this.lastTransitionMs < every) return;
    const report = await transitionStorageClasses(this.store!, this.options.target.storageClasses, {
      ...(this.options.keys ? { keys: this.options.keys } : {}),
      now,
      signal: this.controller.signal,
    }).catch((error: unknown) => {
      // The target's own repository is not there until the first backup or segment was copied.
      if (isWardenError(error, 'WARDEN_E_REPO_NOT_INITIALIZED')) return undefined;
      throw error;
    });
    this.lastTransitionMs = now.getTime();
    if (!report) return;
    this.state.lastTransition = {
      at: now.toISOString(),
      moved: report.moved.length,
      skipped: report.skipped.length,
    };
    if (report.moved.length)
      this.logger.info({ moved: report.moved.length }, 'storage classes changed by age');
  }

  private async run(): Promise<void> {
    const { signal } = this.controller;
    const base = this.options.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
    while (!signal.aborted) {
      let delay = this.options.target.intervalMs;
      this.poked = false;
      try {
        await this.pass();
      } catch (error) {
        if (signal.aborted) break;
        const attempt = (this.state.failedAttempts += 1);
        delay = backoffDelay(attempt - 1, base, base * 64);
        const at = new Date();
        const e =
          error instanceof WardenError
            ? { code: error.code, message: error.message }
            : { code: 'WARDEN_E_INTERNAL', message: String(error) };
        this.state.state = 'failing';
        this.state.lastError = { ...e, at: at.toISOString() };
        this.state.nextAttemptAt = new Date(at.getTime() + delay).toISOString();
        this.logger.warn({ err: e, attempt, retryInMs: delay }, 'copy to the target failed; will retry');
        if (attempt === 1)
          this.events.emit('copy.failed', {
            ...this.options.subject,
            target: this.name,
            at: at.toISOString(),
            attempt,
            error: e,
          });
      }
      await this.idle(delay);
    }
  }

  /** Waits `ms`, or less when poked or stopped. */
  private async idle(ms: number): Promise<void> {
    if (this.poked && this.state.failedAttempts === 0) {
      this.poked = false;
      return;
    }
    // While failing, the backoff holds: a target that is down is not hammered on every segment.
    const woken =
      this.state.failedAttempts > 0
        ? new Promise<void>(() => {})
        : new Promise<void>((resolve) => (this.wake = resolve));
    await Promise.race([sleep(ms, this.controller.signal).catch(() => undefined), woken]);
    this.wake = undefined;
  }
}
