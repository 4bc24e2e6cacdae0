import type { Logger } from 'pino';
import { WardenError } from '../errors.ts';
import { subjectOf, type ObservedOptions } from '../events/observed.ts';
import { silentLogger } from '../logger.ts';
import { listBackups } from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { acquireLock, type LockLease } from '../repository/repository-lock.ts';
import { historyKey, readWalInventory } from '../repository/wal-archive.ts';
import { abortable } from '../util/abort.ts';
import { StepRecorder, type StepReport } from '../util/step-recorder.ts';
import { parseTimelineHistory, type TimelineHistoryEntry } from '../wal/timeline-history.ts';
import { deleteBackupObjects } from './delete-backup.ts';
import { findLeftovers, leftoverCount, removeLeftovers, type Leftovers } from './leftovers.ts';
import { planExpiry, type ExpiryPlan } from './plan-expiry.ts';
import { describePolicy, type RetentionPolicy } from './retention-policy.ts';

export interface ExpireOptions extends ObservedOptions {
  store: ObjectStore;
  policy: RetentionPolicy;
  /** Plan and report only; nothing is deleted and no lock is taken. */
  dryRun?: boolean;
  logger?: Logger;
  /** The moment the policy is measured from (default: now). */
  now?: Date;
  signal?: AbortSignal;
}

export interface ExpireReport {
  repository: string;
  dryRun: boolean;
  policy: RetentionPolicy;
  policyText: string;
  plan: ExpiryPlan;
  /** What was actually removed (empty on a dry run). */
  deleted: { backups: string[]; walSegments: number; leftovers: number };
  /** Leftovers of interrupted commands found (removed unless a dry run), see leftovers.ts. */
  leftovers: Leftovers;
  steps: StepReport[];
}

/**
 * Applies a retention policy to a repository: plans with {@link planExpiry}, then (unless
 * `dryRun`) deletes under the repository's `backup` lock, so it never races a backup; last it
 * removes the leftovers of interrupted commands (see leftovers.ts).
 *
 * Order matters for crash safety. Backups go first, each by removing `backup.json` (which
 * uncommits it: it is no longer listed) and then its objects; WAL goes after, oldest segment
 * first, each by removing its `.json` record and then its data. An interrupted run leaves at
 * worst unlisted leftovers and extra WAL, never a listed backup without its WAL; the next run
 * removes those leftovers.
 *
 * @example
 * const report = await expire({ store, policy: DEFAULT_RETENTION_POLICY, dryRun: true });
 * for (const b of report.plan.expire) console.log(b.id, b.rule);
 */
export async function expire(options: ExpireOptions): Promise<ExpireReport> {
  const { report, removedBytes } = await expireUnobserved(options);
  if (options.events && !report.dryRun)
    options.events.emit('expire.finished', {
      ...subjectOf(options, options.store),
      at: new Date().toISOString(),
      removedBackups: report.deleted.backups.length,
      removedBytes,
    });
  return report;
}

/** The report, and the stored bytes of the backups it deleted (for the event). */
async function expireUnobserved(
  options: ExpireOptions,
): Promise<{ report: ExpireReport; removedBytes: number }> {
  const logger = (options.logger ?? silentLogger).child({ component: 'expire' });
  const dryRun = options.dryRun === true;
  const steps = new StepRecorder();
  const repository = await steps.run('open repository', () => Repository.open(options.store));
  let lock: LockLease | undefined;
  if (dryRun) steps.skip('lock repository', 'dry run: read only');
  else lock = await steps.run('lock repository', () => acquireLock(options.store, 'backup', 'expire'));
  const deleted = { backups: [] as string[], walSegments: 0, leftovers: 0 };
  let removedBytes = 0;
  try {
    const { plan, sizes } = await steps.run(
      'plan',
      // Only reads: a stalled store must not hold the lock past a Ctrl-C.
      () => abortable(planFor(repository, options), options.signal, 'expire'),
      ({ plan: p }) =>
        `${p.keep.length} backup(s) stay, ${p.expire.length} go; ${p.walToDelete.length} WAL segment(s) go`,
    );
    if (dryRun) {
      steps.skip('delete backups', 'dry run');
      steps.skip('delete WAL', 'dry run');
    } else {
      await steps.run(
        'delete backups',
        async () => {
          for (const backup of plan.expire) {
            throwIfAborted(options.signal);
            lock?.assertHeld();
            await deleteBackupObjects(options.store, backup.id);
            deleted.backups.push(backup.id);
            removedBytes += sizes.get(backup.id) ?? 0;
            logger.info({ id: backup.id, rule: backup.rule }, 'backup expired');
          }
        },
        () => `${deleted.backups.length} deleted`,
      );
      await steps.run(
        'delete WAL',
        async () => {
          for (const segment of plan.walToDelete) {
            throwIfAborted(options.signal);
            lock?.assertHeld();
            for (const key of segment.keys) await options.store.delete(key);
            deleted.walSegments += 1;
          }
          if (deleted.walSegments) logger.info({ segments: deleted.walSegments }, 'WAL expired');
        },
        () => `${deleted.walSegments} segment(s) deleted`,
      );
    }
    // After the plan's deletes, so what an interrupted run of this very expire leaves is found
    // by the next one; a dry run holds no lock, so a running backup's objects are skipped.
    const leftovers = await steps.run(
      'find leftovers',
      () => findLeftovers(options.store, { holdingBackupLock: !dryRun }),
      (found) => `${leftoverCount(found)} found`,
    );
    if (dryRun) steps.skip('remove leftovers', 'dry run');
    else if (leftoverCount(leftovers) === 0) steps.skip('remove leftovers', 'none found');
    else
      await steps.run(
        'remove leftovers',
        async () => {
          deleted.leftovers = await removeLeftovers(options.store, leftovers, () => {
            throwIfAborted(options.signal);
            lock?.assertHeld();
          });
          logger.info({ leftovers: deleted.leftovers }, 'leftovers of interrupted commands removed');
        },
        () => `${deleted.leftovers} removed`,
      );
    const report: ExpireReport = {
      repository: repository.location,
      dryRun,
      policy: options.policy,
      policyText: describePolicy(options.policy),
      plan,
      deleted,
      leftovers,
      steps: steps.steps,
    };
    return { report, removedBytes };
  } finally {
    await lock?.release();
  }
}

/** The plan, and each backup's stored bytes (what deleting it frees). */
async function planFor(
  repository: Repository,
  options: ExpireOptions,
): Promise<{ plan: ExpiryPlan; sizes: Map<string, number> }> {
  const inventory = await readWalInventory(repository);
  const backups = await listBackups(repository);
  const plan = planExpiry(backups, inventory, options.policy, options.now ?? new Date(), {
    segmentSize: repository.meta.walSegmentSize,
    histories: await readHistories(options.store, inventory.histories),
  });
  const sizes = new Map(
    backups.map((b) => [b.id, [b.manifest, ...b.archives].reduce((sum, o) => sum + o.size, 0)]),
  );
  return { plan, sizes };
}

/** Parsed history files by timeline; an unreadable one is left out (its timeline then keeps more WAL). */
export async function readHistories(
  store: ObjectStore,
  timelines: readonly number[],
): Promise<Map<number, TimelineHistoryEntry[]>> {
  const histories = new Map<number, TimelineHistoryEntry[]>();
  for (const timeline of timelines) {
    try {
      histories.set(
        timeline,
        parseTimelineHistory((await store.getBuffer(historyKey(timeline))).toString('utf8')),
      );
    } catch {
      // Unknown ancestry only makes the plan keep more WAL.
    }
  }
  return histories;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new WardenError('WARDEN_E_ABORTED', 'expire was stopped; what was deleted so far is consistent');
  }
}
