import { wasInterrupted } from '../events/observed.ts';
import type { BackupKind, EventSubject, WardenEvents } from '../events/warden-events.ts';
import { unixSeconds, type LastBackupFacts } from './cluster-snapshot.ts';

/** What the events told about one cluster since the daemon started (times: Unix seconds). */
export interface ClusterEventFacts {
  repository?: string;
  lastBackups: Partial<Record<BackupKind, LastBackupFacts>>;
  backupFailures: Partial<Record<BackupKind, number>>;
  stream?: { up: boolean; at: number };
  flush?: { at: number; lagBytes?: number; caughtUpAt?: number };
  verification?: { at: number; passed: boolean };
  verificationSuccessAt?: number;
  drill?: {
    at: number;
    passed: boolean;
    rtoSeconds?: number;
    rpoSeconds?: number;
    migrationPassed?: boolean;
  };
  reachability?: { at: number; reachable: boolean };
  /** The last time each job ended with each outcome, by `job\0outcome`. */
  jobs: Map<string, { job: string; outcome: 'succeeded' | 'failed' | 'skipped'; at: number }>;
}

/**
 * Folds the events into per-cluster facts: cheap assignments only (listeners run inside the
 * publisher's emit). The metrics read these at scrape time next to the cached snapshots.
 */
export class EventFacts {
  private readonly clusters = new Map<string, ClusterEventFacts>();

  /** Subscribes to the events it needs; returns the unsubscribe function. */
  subscribe(events: WardenEvents): () => void {
    const offs = [
      events.on('backup.succeeded', (e) => {
        const facts = this.of(e);
        facts.lastBackups[e.kind] = {
          at: unixSeconds(e.at),
          durationSeconds: e.durationMs / 1000,
          dataBytes: e.dataBytes,
          storedBytes: e.storedBytes,
        };
      }),
      events.on('backup.failed', (e) => {
        if (wasInterrupted(e.error)) return;
        const failures = this.of(e).backupFailures;
        failures[e.kind] = (failures[e.kind] ?? 0) + 1;
      }),
      events.on('wal.stream', (e) => {
        this.of(e).stream = { up: e.state === 'streaming', at: unixSeconds(e.at) };
      }),
      events.on('wal.flushed', (e) => {
        this.of(e).flush = {
          at: unixSeconds(e.at),
          ...(e.lagBytes !== undefined ? { lagBytes: e.lagBytes } : {}),
          ...(e.caughtUpAt ? { caughtUpAt: unixSeconds(e.caughtUpAt) } : {}),
        };
      }),
      events.on('verification.finished', (e) => {
        const facts = this.of(e);
        facts.verification = { at: unixSeconds(e.at), passed: e.passed };
        if (e.passed) facts.verificationSuccessAt = unixSeconds(e.at);
      }),
      events.on('drill.finished', (e) => {
        this.of(e).drill = {
          at: unixSeconds(e.at),
          passed: e.passed,
          ...(e.rtoSeconds !== undefined ? { rtoSeconds: e.rtoSeconds } : {}),
          ...(e.rpoSeconds !== undefined ? { rpoSeconds: e.rpoSeconds } : {}),
          ...(e.migration ? { migrationPassed: e.migration.passed } : {}),
        };
      }),
      events.on('repository.reachability', (e) => {
        this.of(e).reachability = { at: unixSeconds(e.at), reachable: e.reachable };
      }),
      events.on('job.finished', (e) => {
        this.of(e).jobs.set(`${e.job}\0${e.outcome}`, {
          job: e.job,
          outcome: e.outcome,
          at: unixSeconds(e.at),
        });
      }),
    ];
    return () => offs.forEach((off) => off());
  }

  get(cluster: string): ClusterEventFacts | undefined {
    return this.clusters.get(cluster);
  }

  private of(subject: EventSubject): ClusterEventFacts {
    let facts = this.clusters.get(subject.cluster);
    if (!facts)
      this.clusters.set(subject.cluster, (facts = { lastBackups: {}, backupFailures: {}, jobs: new Map() }));
    if (subject.repository) facts.repository = subject.repository;
    return facts;
  }
}
