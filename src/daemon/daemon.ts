import http from 'node:http';
import https from 'node:https';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { silentLogger } from '../logger.ts';
import type { Compression } from '../pipeline/compression.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { openObjectStore, type RepositoryLocation } from '../repository/open-object-store.ts';
import { createStatusApp } from '../server/status-app.ts';
import { metricsRoute } from '../server/metrics-route.ts';
import { SnapshotCache } from '../monitoring/snapshot-cache.ts';
import { WardenMetrics } from '../monitoring/warden-metrics.ts';
import { collectMetricsSnapshot } from './metrics-snapshot.ts';
import { loadTlsCredentials } from '../server/tls-credentials.ts';
import { isWardenError, WardenError } from '../errors.ts';
import { WardenEvents } from '../events/warden-events.ts';
import { Repository } from '../repository/repository.ts';
import path from 'node:path';
import { auditDaemonEvents } from '../audit/audit-events.ts';
import { apiAuditEntry } from '../server/api-audit-entry.ts';
import { AuditOutbox } from '../audit/audit-outbox.ts';
import { alertsRoute } from '../notify/alerts-route.ts';
import { resolveNotificationsPlan } from '../notify/notify-config.ts';
import { Notifier } from '../notify/notifier.ts';
import { ClusterSupervisor } from './cluster-supervisor.ts';
import type { DaemonPlan } from './daemon-config.ts';
import { objectiveWarnings } from './objectives-check.ts';
import { collectClusterStatus, type DaemonStatus } from './status.ts';
import { clusterCatalog, type ClusterCatalog } from './catalog-view.ts';
import { resolveDashboardPlan } from './dashboard-config.ts';
import { StatusSampler } from './status-sampler.ts';
import { cacheRoutes } from '../server/cache-routes.ts';
import { CacheCoherence } from './cache-coherence.ts';
import { ClusterCopies } from '../copy/cluster-copies.ts';
import type { JobStatus } from '../scheduler/scheduler.ts';

// Where callers have always found it; the type lives with the status it describes.
export type { DaemonStatus } from './status.ts';

export interface DaemonOptions {
  plan: DaemonPlan;
  compression: Compression;
  /** Recipients to encrypt to and identities for verification restores (none: plaintext). */
  keys?: RepositoryKeys;
  logger?: Logger;
  /** Serve the status API (default true) as `plan.http` says: address, TLS, tokens. */
  http?: boolean;
  /**
   * Opens a cluster's repository (default: `openObjectStore`, a directory or an S3 bucket as the
   * location says); once per cluster, at start.
   */
  openStore?: (location: RepositoryLocation) => ObjectStore | Promise<ObjectStore>;
  /** Scheduler tick and first retry delay; tests shorten them. */
  tickMs?: number;
  retryBaseMs?: number;
  daemonId?: string;
  /** How often the metrics' cached repository and server facts are refreshed (default 30 s). */
  metricsRefreshMs?: number;
  /** The hub every cluster's use cases publish to (default: a new one; see `Daemon.events`). */
  events?: WardenEvents;
  /** How often storage classes are brought in line with their age rules (default 1 h). */
  transitionEveryMs?: number;
}

/**
 * `warden serve`: one supervisor per configured cluster (WAL stream, heartbeat, scheduled jobs)
 * and the status API. `start()` and `stop()` are idempotent; `stop()` lets a running job abandon
 * cleanly (nothing half-committed) before it returns.
 *
 * @example
 * const daemon = new Daemon({ plan, compression: 'zstd', logger });
 * await daemon.start();
 * process.once('SIGTERM', () => void daemon.stop());
 */
export class Daemon {
  private readonly logger: Logger;
  private supervisors: ClusterSupervisor[] = [];
  /** Each cluster's cache invalidation on a timeline change or a cut-over (clusters with a `cache` section). */
  private coherences: CacheCoherence[] = [];
  /** Each cluster's off-site copies and storage-class transitions, by cluster name. */
  private readonly copies = new Map<string, ClusterCopies>();
  private readonly notifier: Notifier;
  private server: http.Server | https.Server | undefined;
  private snapshots: SnapshotCache | undefined;
  private unsubscribeMetrics: (() => void) | undefined;
  private audit: ReturnType<typeof auditDaemonEvents> | undefined;
  /** Audit records of API calls and jobs, queued on local disk: nothing waits for the repository. */
  private auditOutbox: AuditOutbox | undefined;
  private startedAt = new Date();
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private readonly sampler: StatusSampler;
  readonly warnings: string[] = [];
  private readonly notificationsStateFile: string;
  /** What every cluster's backups, WAL stream, jobs … publish: metrics and notifications subscribe here. */
  readonly events: WardenEvents;

  constructor(private readonly options: DaemonOptions) {
    this.logger = options.logger ?? silentLogger;
    this.events =
      options.events ??
      new WardenEvents((error, event) =>
        this.logger.warn({ event, err: String(error) }, 'an event listener failed'),
      );
    const plan = options.plan;
    const notifications = plan.notifications ?? resolveNotificationsPlan({}, process.cwd(), {});
    this.notificationsStateFile = notifications.stateFile;
    this.notifier = new Notifier({
      plan: notifications,
      clusters: plan.clusters.map((c) => c.name),
      logger: this.logger,
      secrets: plan.clusters.flatMap((c) => (c.connection?.password ? [c.connection.password] : [])),
    });
    this.sampler = new StatusSampler(
      options.plan.dashboard ?? resolveDashboardPlan(undefined),
      () => this.status(),
      this.logger,
    );
  }

  /** The bound HTTP address once started (port 0 in the plan picks a free one). */
  get address(): AddressInfo | undefined {
    const address = this.server?.address();
    return address && typeof address === 'object' ? address : undefined;
  }

  async start(): Promise<void> {
    this.starting ??= this.doStart();
    await this.starting;
  }

  private async doStart(): Promise<void> {
    this.startedAt = new Date();
    const openStore = this.options.openStore ?? openObjectStore;
    // Loaded before any job runs, so no event is missed and pending notifications go out first.
    await this.notifier.start();
    this.notifier.watch(this.events);
    for (const plan of this.options.plan.clusters) {
      if (!plan.connection) {
        throw new WardenError('WARDEN_E_CONFIG_INVALID', `cluster ${plan.name}: no connection`, {
          details: { field: 'daemon.clusters' },
        });
      }
      for (const warning of objectiveWarnings(plan)) {
        this.warnings.push(warning);
        this.logger.warn(warning);
      }
      if (plan.cache) {
        this.coherences.push(
          new CacheCoherence({
            cluster: plan.name,
            plan: plan.cache,
            connection: plan.connection,
            events: this.events,
            logger: this.logger,
          }),
        );
      }
      this.supervisors.push(
        new ClusterSupervisor({
          plan,
          connection: plan.connection,
          store: await openStore(plan.repository),
          compression: this.options.compression,
          ...(this.options.keys ? { keys: this.options.keys } : {}),
          logger: this.logger,
          events: this.events,
          ...(this.options.tickMs !== undefined ? { tickMs: this.options.tickMs } : {}),
          ...(this.options.retryBaseMs !== undefined ? { retryBaseMs: this.options.retryBaseMs } : {}),
          ...(this.options.daemonId ? { daemonId: this.options.daemonId } : {}),
          ...(this.options.events ? { events: this.options.events } : {}),
        }),
      );
      const supervisor = this.supervisors.at(-1)!;
      if (plan.copyTo.length || plan.storageClasses.length) {
        this.copies.set(
          plan.name,
          new ClusterCopies({
            subject: supervisor.subject,
            source: supervisor.store,
            targets: plan.copyTo,
            storageClasses: plan.storageClasses,
            openStore,
            ...(this.options.keys ? { keys: this.options.keys } : {}),
            events: this.events,
            logger: this.logger,
            ...(this.options.retryBaseMs !== undefined ? { retryBaseMs: this.options.retryBaseMs } : {}),
            ...(this.options.transitionEveryMs !== undefined
              ? { transitionEveryMs: this.options.transitionEveryMs }
              : {}),
          }),
        );
      }
    }
    // Beside the notification state: local, so a record survives the repository being away.
    const outbox = new AuditOutbox({
      dir: path.join(path.dirname(this.notificationsStateFile), 'audit-outbox'),
      repositoryOf: (cluster) => this.auditedRepository(cluster),
      logger: this.logger.child({ component: 'audit' }),
    });
    this.auditOutbox = outbox;
    outbox.start();
    this.audit = auditDaemonEvents(this.events, {
      repositoryOf: (cluster) => this.auditedRepository(cluster),
      logger: this.logger.child({ component: 'audit' }),
      sink: (cluster, entry) => outbox.record([cluster], entry),
    });
    if (this.options.http !== false) {
      const clusterNames = this.supervisors.map((s) => s.plan.name);
      const plan = this.options.plan.http;
      const dashboard = this.options.plan.dashboard;
      const app = createStatusApp(
        { status: () => this.status() },
        {
          http: plan,
          routes: [
            metricsRoute(this.startMetrics()),
            alertsRoute(this.notifier),
            ...cacheRoutes({
              clusters: () => this.coherences.map((c) => c.cluster),
              invalidate: (cluster, reason) =>
                this.coherences.find((c) => c.cluster === cluster)!.invalidate(reason),
            }),
          ],
          dashboard: {
            history: () => this.sampler.history.snapshot(),
            catalog: () => this.catalog(),
            ...(dashboard?.alertmanagerUrl ? { alertmanagerUrl: dashboard.alertmanagerUrl } : {}),
          },
          logger: this.logger.child({ component: 'http' }),
          // The API acts for every cluster it serves: each cluster's log records the call.
          audit: (event) => outbox.record(clusterNames, apiAuditEntry(event)),
        },
      );
      const server = plan.tls
        ? https.createServer({ ...(await loadTlsCredentials(plan.tls)), minVersion: 'TLSv1.2' }, app)
        : http.createServer(app);
      const { host, port } = plan;
      await new Promise<void>((resolve, reject) => {
        server.once('error', (error: NodeJS.ErrnoException) =>
          reject(
            new WardenError(
              // A taken port is the same error wherever a port is asked for (restore, verify, here).
              error.code === 'EADDRINUSE' ? 'WARDEN_E_PORT_IN_USE' : 'WARDEN_E_USAGE',
              `cannot serve the status API on ${host}:${port} (${error.code ?? error.message})`,
              {
                hint: 'Pick another port with --http-port or daemon.http.port.',
                details: { host, port },
                cause: error,
              },
            ),
          ),
        );
        server.listen(port, host, () => resolve());
      });
      this.server = server;
    }
    for (const supervisor of this.supervisors) supervisor.start();
    for (const coherence of this.coherences) coherence.start();
    for (const copies of this.copies.values()) copies.start();
    this.snapshots?.start();
    this.notifier.watchStatus(async () => (await this.status()).clusters);
    if (this.options.http !== false) this.sampler.start();
  }

  /** Warden's own active alert conditions and the webhooks' delivery state. */
  alerts(): ReturnType<Notifier['alerts']> {
    return this.notifier.alerts();
  }

  /** The metrics: subscribed to the events now, their cached snapshots refreshed once started. */
  private startMetrics(): WardenMetrics {
    this.snapshots = new SnapshotCache({
      sources: this.supervisors.map((supervisor) => ({
        cluster: supervisor.plan.name,
        collect: () => {
          const receiver = supervisor.receiverStatus();
          return collectMetricsSnapshot({
            plan: supervisor.plan,
            store: supervisor.store,
            ...(supervisor.plan.connection ? { connection: supervisor.plan.connection } : {}),
            live: { ...(receiver ? { receiver } : {}), jobs: supervisor.jobs() },
          });
        },
      })),
      ...(this.options.metricsRefreshMs !== undefined ? { intervalMs: this.options.metricsRefreshMs } : {}),
      logger: this.logger.child({ component: 'metrics' }),
    });
    const metrics = new WardenMetrics({
      clusters: this.supervisors.map((supervisor) => ({
        cluster: supervisor.plan.name,
        repository: supervisor.store.location,
        walStreaming: supervisor.plan.walStreaming,
      })),
      snapshots: this.snapshots,
      copies: (cluster) => this.copies.get(cluster)?.status() ?? [],
    });
    const unsubscribe = metrics.subscribe(this.events);
    // A finished job changed the repository (a backup, a verification, a drill): refresh soon.
    const offJobs = this.events.on('job.finished', () => this.snapshots?.requestRefresh());
    this.unsubscribeMetrics = () => {
      unsubscribe();
      offJobs();
    };
    return metrics;
  }

  async stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.starting?.catch(() => undefined);
      await this.sampler.stop();
      const server = this.server;
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
      await this.snapshots?.stop();
      this.unsubscribeMetrics?.();
      await Promise.all([
        ...this.supervisors.map((supervisor) => supervisor.stop()),
        ...this.coherences.map((coherence) => coherence.stop()),
        ...[...this.copies.values()].map((copies) => copies.stop()),
      ]);
      this.audit?.unsubscribe();
      await this.audit?.flush();
      await this.auditOutbox?.stop();
      // Last: the events of jobs that stopped are recorded before the state is written.
      await this.notifier.stop();
    })();
    await this.stopping;
  }

  /** The cluster's repository with the daemon's signing key, once it exists (the first stream or backup creates it). */
  private async auditedRepository(cluster: string): Promise<Repository | undefined> {
    const supervisor = this.supervisors.find((s) => s.plan.name === cluster);
    if (!supervisor) return undefined;
    try {
      return await Repository.open(supervisor.store, this.options.keys ?? {});
    } catch (error) {
      if (isWardenError(error, 'WARDEN_E_REPO_NOT_INITIALIZED')) return undefined;
      throw error;
    }
  }

  /** Each cluster's backups and recent drills, for the dashboard. */
  async catalog(): Promise<{ clusters: ClusterCatalog[] }> {
    return {
      clusters: await Promise.all(this.supervisors.map((s) => clusterCatalog(s.plan.name, s.store))),
    };
  }

  /**
   * Each cluster's jobs as its scheduler holds them: what `status()` reports as `jobs`, without
   * its repository reads and server connection per cluster (what `serve` prints from every 2 s).
   */
  jobs(): Array<{ name: string; jobs: JobStatus[] }> {
    return this.supervisors.map((supervisor) => ({ name: supervisor.plan.name, jobs: supervisor.jobs() }));
  }

  async status(): Promise<DaemonStatus> {
    const clusters = await Promise.all(
      this.supervisors.map(async (supervisor) => {
        const receiver = supervisor.receiverStatus();
        const copies = this.copies.get(supervisor.plan.name)?.status();
        const status = await collectClusterStatus({
          plan: supervisor.plan,
          // The supervisor's own store: no store (nor S3 client) opened per request.
          store: supervisor.store,
          ...(supervisor.plan.connection ? { connection: supervisor.plan.connection } : {}),
          live: { ...(receiver ? { receiver } : {}), jobs: supervisor.jobs() },
        });
        return copies?.length ? { ...status, copies } : status;
      }),
    );
    return {
      daemon: {
        ...(this.options.daemonId ? { id: this.options.daemonId } : {}),
        startedAt: this.startedAt.toISOString(),
        warnings: this.warnings,
      },
      clusters,
    };
  }
}
