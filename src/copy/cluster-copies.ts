import type { Logger } from 'pino';
import type { WardenEvents, EventSubject } from '../events/warden-events.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import type { RepositoryLocation } from '../repository/open-object-store.ts';
import { sleep } from '../util/backoff.ts';
import { ContinuousCopy } from './continuous-copy.ts';
import type { CopyTargetPlan } from './copy-target-plan.ts';
import type { CopyTargetStatus } from './copy-target-status.ts';
import type { StorageClassRule } from '../repository/storage-class-rules.ts';
import { transitionStorageClasses } from './storage-transition.ts';

export interface ClusterCopiesOptions {
  subject: EventSubject;
  source: ObjectStore;
  targets: readonly CopyTargetPlan[];
  /** Age rules of the cluster's own repository (an S3 bucket), run by the transition job. */
  storageClasses: readonly StorageClassRule[];
  openStore: (location: RepositoryLocation) => ObjectStore | Promise<ObjectStore>;
  keys?: RepositoryKeys;
  events: WardenEvents;
  logger: Logger;
  retryBaseMs?: number;
  /** How often storage classes are brought in line with the age rules (default 1 h). */
  transitionEveryMs?: number;
}

/**
 * One cluster's off-site copies and storage-class transitions in the daemon: a
 * {@link ContinuousCopy} per `copyTo` target, poked when a backup, a dump or a WAL segment was
 * committed, and the transition job on the cluster's own repository when it has age rules.
 */
export class ClusterCopies {
  readonly copies: ContinuousCopy[];
  private readonly controller = new AbortController();
  private unsubscribe: (() => void) | undefined;
  private transitions: Promise<void> | undefined;

  constructor(private readonly options: ClusterCopiesOptions) {
    const logger = options.logger.child({ cluster: options.subject.cluster });
    this.copies = options.targets.map(
      (target) =>
        new ContinuousCopy({
          subject: options.subject,
          source: options.source,
          target,
          openTarget: () => options.openStore(target.location),
          ...(options.keys ? { keys: options.keys } : {}),
          ...(options.keys?.signingKey ? { signingKey: options.keys.signingKey } : {}),
          events: options.events,
          logger,
          ...(options.retryBaseMs !== undefined ? { retryBaseMs: options.retryBaseMs } : {}),
          ...(options.transitionEveryMs !== undefined
            ? { transitionEveryMs: options.transitionEveryMs }
            : {}),
        }),
    );
  }

  start(): void {
    if (this.unsubscribe || this.controller.signal.aborted) return;
    const mine = (e: EventSubject) => e.cluster === this.options.subject.cluster;
    const poke = (e: EventSubject) => {
      if (mine(e)) for (const copy of this.copies) copy.poke();
    };
    // A committed backup or dump is copied at once; WAL is picked up every `interval` (a pass
    // per flushed message would list the repository about once a second).
    this.unsubscribe = this.options.events.on('backup.succeeded', poke);
    for (const copy of this.copies) copy.start();
    if (this.options.storageClasses.length) this.transitions = this.runTransitions();
  }

  async stop(): Promise<void> {
    this.controller.abort();
    this.unsubscribe?.();
    await Promise.all([...this.copies.map((copy) => copy.stop()), this.transitions]);
  }

  status(now = new Date()): CopyTargetStatus[] {
    return this.copies.map((copy) => copy.status(now));
  }

  /** The transition job on the cluster's own repository: at start, then every `transitionEveryMs`. */
  private async runTransitions(): Promise<void> {
    const { signal } = this.controller;
    const logger = this.options.logger.child({
      cluster: this.options.subject.cluster,
      component: 'storage-class',
    });
    while (!signal.aborted) {
      try {
        const report = await transitionStorageClasses(this.options.source, this.options.storageClasses, {
          ...(this.options.keys ? { keys: this.options.keys } : {}),
          signal,
        });
        if (report.moved.length)
          logger.info({ moved: report.moved.length }, 'storage classes changed by age');
      } catch (error) {
        if (!signal.aborted)
          logger.warn({ err: String(error) }, 'storage-class transition failed; next run later');
      }
      await sleep(this.options.transitionEveryMs ?? 3_600_000, signal).catch(() => undefined);
    }
  }
}
