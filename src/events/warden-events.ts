/**
 * The one seam between what Warden does and who watches it. Use cases (backup, WAL receiver,
 * restore, verify, drill, expire, the scheduler's jobs, locks) publish facts here; metrics,
 * notifications, the dashboard's history and an audit log subscribe. A use case never learns who
 * listens, and a listener that throws never breaks the use case that published.
 *
 * Events carry no secret: no connection string with a password, no key, no token. Errors travel
 * as `{ code, message }` only (messages of WardenError never embed secrets; see errors.ts).
 */

/** Who the event is about: the daemon's cluster name (the CLI uses "default") and its repository. */
export interface EventSubject {
  cluster: string;
  /** The repository location as printed (a path or `s3://bucket/prefix`), never with credentials. */
  repository?: string;
}

export interface EventError {
  code: string;
  message: string;
}

export type BackupKind = 'full' | 'incremental' | 'dump';

/** Every event, by name. Times are ISO-8601 UTC strings; sizes bytes; durations milliseconds. */
export interface WardenEventMap {
  'backup.started': EventSubject & { kind: BackupKind; at: string };
  'backup.succeeded': EventSubject & {
    kind: BackupKind;
    id: string;
    at: string;
    durationMs: number;
    /** Bytes read from the server (the data directory or the dump's uncompressed size). */
    dataBytes: number;
    /** Bytes written to the repository (compressed, encrypted). */
    storedBytes: number;
  };
  'backup.failed': EventSubject & { kind: BackupKind; at: string; durationMs: number; error: EventError };
  /** The WAL stream's state changed (`streaming` once connected and receiving). */
  'wal.stream': EventSubject & {
    state: 'starting' | 'streaming' | 'stopped' | 'failed';
    at: string;
    error?: EventError;
  };
  /** WAL became durable in the repository up to `lsn` (published at most once per flush). */
  'wal.flushed': EventSubject & {
    lsn: string;
    timeline: number;
    at: string;
    /** Bytes the server had written beyond `lsn` when it was flushed, when known. */
    lagBytes?: number;
    /** The commit time of the newest transaction in the flushed WAL, when known. */
    lastCommitAt?: string;
    /** The server's clock when everything it had written was last durable here, when known. */
    caughtUpAt?: string;
  };
  'wal.gap': EventSubject & { timeline: number; from: string; to: string; cause: string; at: string };
  'timeline.changed': EventSubject & { from: number; to: number; at: string };
  /** The applications' caches were invalidated (docs/cache-coherence.md). */
  'cache.invalidated': EventSubject & {
    kind: 'timeline' | 'cut-over';
    reason: string;
    generation: number;
    deletedKeys: number;
    at: string;
    durationMs: number;
  };
  'cache.invalidation-failed': EventSubject & {
    kind: 'timeline' | 'cut-over';
    at: string;
    error: EventError;
  };
  'restore.succeeded': EventSubject & { at: string; durationMs: number; backupId: string; target: string };
  'restore.failed': EventSubject & { at: string; durationMs: number; error: EventError };
  'verification.finished': EventSubject & {
    at: string;
    durationMs: number;
    passed: boolean;
    backupId?: string;
    error?: EventError;
  };
  'drill.finished': EventSubject & {
    at: string;
    passed: boolean;
    rtoSeconds?: number;
    rpoSeconds?: number;
    objectiveRtoSeconds?: number;
    objectiveRpoSeconds?: number;
    /** The migration step on the restored copy, when the drill ran one. */
    migration?: { passed: boolean; code?: string };
    error?: EventError;
  };
  'expire.finished': EventSubject & { at: string; removedBackups: number; removedBytes: number };
  'job.finished': EventSubject & {
    job: string;
    outcome: 'succeeded' | 'failed' | 'skipped';
    at: string;
    durationMs: number;
    detail?: string;
    error?: EventError;
  };
  'lock.acquired': EventSubject & { lock: string; at: string };
  'lock.lost': EventSubject & { lock: string; at: string; reason: string };
  'repository.reachability': EventSubject & { reachable: boolean; at: string; error?: EventError };
  /**
   * A `copyTo` target (docs/off-site-copies.md): `failed` on the first failed pass of an outage
   * (later attempts are logged, not published), `caught-up` on the first pass that succeeds after one.
   */
  'copy.failed': EventSubject & { target: string; at: string; attempt: number; error: EventError };
  'copy.caught-up': EventSubject & { target: string; at: string; failedAttempts: number; lagSeconds: number };
}

export type WardenEventName = keyof WardenEventMap;
export type WardenEvent = {
  [K in WardenEventName]: { name: K; payload: WardenEventMap[K] };
}[WardenEventName];
export type WardenListener<K extends WardenEventName> = (payload: WardenEventMap[K]) => void;

/** What a use case needs: somewhere to publish. Optional in every use case's options. */
export interface EventPublisher {
  emit<K extends WardenEventName>(name: K, payload: WardenEventMap[K]): void;
}

/**
 * A synchronous, typed publish/subscribe hub. Listeners run in subscription order inside
 * `emit`; one that throws is reported to `onListenerError` (default: ignored) and the others
 * still run. Listeners that need I/O start it and return (a notifier queues; metrics set gauges).
 *
 * @example
 * const events = new WardenEvents();
 * const off = events.on('backup.failed', (e) => logger.warn(e.error, `backup of ${e.cluster} failed`));
 * await takeBackup({ ..., events });
 * off();
 */
export class WardenEvents implements EventPublisher {
  private readonly listeners = new Map<WardenEventName, Set<(payload: never) => void>>();
  private readonly anyListeners = new Set<(event: WardenEvent) => void>();

  constructor(
    private readonly onListenerError: (error: unknown, event: WardenEventName) => void = () => {},
  ) {}

  /** Subscribes to one event; returns the unsubscribe function. */
  on<K extends WardenEventName>(name: K, listener: WardenListener<K>): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(listener as (payload: never) => void);
    return () => set.delete(listener as (payload: never) => void);
  }

  /** Subscribes to every event (an audit log, the dashboard's history). */
  onAny(listener: (event: WardenEvent) => void): () => void {
    this.anyListeners.add(listener);
    return () => this.anyListeners.delete(listener);
  }

  emit<K extends WardenEventName>(name: K, payload: WardenEventMap[K]): void {
    for (const listener of this.listeners.get(name) ?? []) {
      this.call(name, () => (listener as WardenListener<K>)(payload));
    }
    for (const listener of this.anyListeners) {
      this.call(name, () => listener({ name, payload } as WardenEvent));
    }
  }

  private call(name: WardenEventName, run: () => void): void {
    try {
      run();
    } catch (error) {
      this.onListenerError(error, name);
    }
  }
}

/** A publisher that drops everything: the default of use cases run without observers. */
export const noEvents: EventPublisher = { emit: () => {} };
