import type { Logger } from 'pino';
import type { WardenEventMap, WardenEvents } from '../events/warden-events.ts';
import type { Repository } from '../repository/repository.ts';
import { currentActor } from './audit-actor.ts';
import { appendAudit } from './audit-log.ts';
import type { AuditEntry } from './audit-record.ts';

/**
 * Records what the daemon does on its own (scheduled and on-demand jobs: backups, dumps, expiry,
 * verification, drills) in each cluster's audit log, from the event seam. Appends run one at a
 * time per cluster, in the order the events came. Given a `sink` (the daemon's durable outbox),
 * records go there instead and wait out an unreachable repository; without one, a record that
 * cannot be written is logged and dropped (the job's own outcome is in its state file either way).
 *
 * Returns the unsubscribe function; `flush()` waits for the appends under way (the daemon calls
 * it when stopping).
 */
export function auditDaemonEvents(
  events: WardenEvents,
  options: {
    /** The repository handle (with the signing key) of a cluster by name; undefined: not audited. */
    repositoryOf: (cluster: string) => Promise<Repository | undefined>;
    logger: Logger;
    /** Takes each record instead of appending it here (must not block; see AuditOutbox). */
    sink?: (cluster: string, entry: AuditEntry) => void;
  },
): { unsubscribe: () => void; flush: () => Promise<void> } {
  const queues = new Map<string, Promise<void>>();
  const enqueue = (cluster: string, entry: AuditEntry) => {
    if (options.sink) return options.sink(cluster, entry);
    const previous = queues.get(cluster) ?? Promise.resolve();
    const next = previous.then(async () => {
      try {
        const repository = await options.repositoryOf(cluster);
        if (repository) await appendAudit(repository, entry);
      } catch (error) {
        options.logger.warn(
          { cluster, action: entry.action, err: String(error) },
          'the audit log could not record this',
        );
      }
    });
    queues.set(cluster, next);
  };
  const unsubscribe = events.on('job.finished', (event: WardenEventMap['job.finished']) => {
    // A slot another daemon or a newer backup already served did nothing: not an operation.
    if (event.outcome === 'skipped') return;
    enqueue(event.cluster, {
      actor: currentActor(),
      action: `daemon ${event.job}`,
      outcome: event.outcome,
      ...(event.error ? { code: event.error.code } : {}),
      ...(event.detail ? { target: event.detail.slice(0, 200) } : {}),
      durationMs: event.durationMs,
      occurredAt: event.at,
    });
  });
  return {
    unsubscribe,
    flush: async () => {
      await Promise.all(queues.values());
    },
  };
}
