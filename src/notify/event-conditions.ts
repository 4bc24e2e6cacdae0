import { wasInterrupted } from '../events/observed.ts';
import type { EventError, WardenEvents } from '../events/warden-events.ts';
import type { ConditionCode, ConditionInput } from './conditions.ts';

/** Where conditions go: the notifier's active set. */
export interface ConditionSink {
  raise(input: ConditionInput): void;
  clear(key: { cluster: string; condition: ConditionCode; subject?: string }, at: string, why: string): void;
}

/**
 * The scheduler's job names whose failure is one of the specific conditions. A job's
 * `job.finished` and the use case's own event (`backup.failed`) name the same condition key, so
 * whichever comes first fires it and the other changes nothing.
 */
const JOB_CONDITIONS: Readonly<Record<string, ConditionCode>> = {
  backup: 'backup-failed',
  'full-backup': 'backup-failed',
  'gap-backup': 'backup-failed',
  'logical-dump': 'dump-failed',
  verification: 'verification-failed',
  drill: 'drill-failed',
};

/**
 * Subscribes the event conditions: a failure fires, the next success of the same kind
 * resolves. Returns the unsubscribe function.
 */
export function watchEvents(events: WardenEvents, sink: ConditionSink): () => void {
  const offs = [
    events.on('copy.failed', (e) =>
      sink.raise({
        cluster: e.cluster,
        condition: 'copy-failed',
        subject: e.target,
        summary: `copy to ${e.target} failed (retrying with backoff): ${describe(e.error)}`,
        ...where(e.repository),
        error: e.error,
        at: e.at,
      }),
    ),
    events.on('copy.caught-up', (e) =>
      sink.clear(
        { cluster: e.cluster, condition: 'copy-failed', subject: e.target },
        e.at,
        `copy to ${e.target} caught up after ${e.failedAttempts} failed attempt(s)`,
      ),
    ),
    events.on('backup.failed', (e) => {
      if (wasInterrupted(e.error)) return;
      sink.raise({
        cluster: e.cluster,
        condition: e.kind === 'dump' ? 'dump-failed' : 'backup-failed',
        summary: `${e.kind} backup failed: ${describe(e.error)}`,
        ...where(e.repository),
        error: e.error,
        at: e.at,
      });
    }),
    events.on('backup.succeeded', (e) =>
      sink.clear(
        { cluster: e.cluster, condition: e.kind === 'dump' ? 'dump-failed' : 'backup-failed' },
        e.at,
        `${e.kind} backup ${e.id} succeeded`,
      ),
    ),
    events.on('verification.finished', (e) => {
      if (e.passed)
        sink.clear(
          { cluster: e.cluster, condition: 'verification-failed' },
          e.at,
          `verification of ${e.backupId ?? 'the latest backup'} passed`,
        );
      else if (!wasInterrupted(e.error))
        sink.raise({
          cluster: e.cluster,
          condition: 'verification-failed',
          summary: `verification of ${e.backupId ?? 'the latest backup'} failed${e.error ? `: ${describe(e.error)}` : ''}`,
          ...where(e.repository),
          ...(e.error ? { error: e.error } : {}),
          at: e.at,
        });
    }),
    events.on('drill.finished', (e) => {
      if (e.passed) sink.clear({ cluster: e.cluster, condition: 'drill-failed' }, e.at, 'DR drill passed');
      else if (!wasInterrupted(e.error))
        sink.raise({
          cluster: e.cluster,
          condition: 'drill-failed',
          summary: `DR drill failed${e.error ? `: ${describe(e.error)}` : ''}${measured(e.rtoSeconds, e.objectiveRtoSeconds, 'RTO')}${measured(e.rpoSeconds, e.objectiveRpoSeconds, 'RPO')}`,
          ...where(e.repository),
          ...(e.error ? { error: e.error } : {}),
          at: e.at,
        });
    }),
    events.on('job.finished', (e) => {
      if (e.outcome === 'skipped') return;
      const specific = JOB_CONDITIONS[e.job];
      const key = specific
        ? { cluster: e.cluster, condition: specific }
        : { cluster: e.cluster, condition: 'job-failed' as const, subject: e.job };
      if (e.outcome === 'succeeded') sink.clear(key, e.at, `job ${e.job} succeeded`);
      else
        sink.raise({
          ...key,
          summary: `job ${e.job} failed${e.error ? `: ${describe(e.error)}` : e.detail ? `: ${e.detail}` : ''}`,
          ...where(e.repository),
          ...(e.error ? { error: e.error } : {}),
          at: e.at,
        });
    }),
    events.on('repository.reachability', (e) => {
      if (e.reachable)
        sink.clear(
          { cluster: e.cluster, condition: 'repository-unreachable' },
          e.at,
          'repository answers again',
        );
      else
        sink.raise({
          cluster: e.cluster,
          condition: 'repository-unreachable',
          summary: `repository ${e.repository ?? ''} unreachable${e.error ? `: ${describe(e.error)}` : ''}`,
          ...where(e.repository),
          ...(e.error ? { error: e.error } : {}),
          at: e.at,
        });
    }),
  ];
  return () => {
    for (const off of offs) off();
  };
}

function describe(error: EventError): string {
  return `${error.message} (${error.code})`;
}

function where(repository: string | undefined): { repository?: string } {
  return repository ? { repository } : {};
}

function measured(value: number | undefined, objective: number | undefined, what: string): string {
  return value !== undefined && objective !== undefined && value > objective
    ? `; ${what} ${value}s above the objective ${objective}s`
    : '';
}
