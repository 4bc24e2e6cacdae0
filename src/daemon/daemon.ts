import http from 'node:http';
import https from 'node:https';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { silentLogger } from '../logger.ts';
import type { Compression } from '../pipeline/compression.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { FsObjectStore } from '../repository/fs/fs-object-store.ts';
import { createStatusApp } from '../server/status-app.ts';
import { loadTlsCredentials } from '../server/tls-credentials.ts';
import { WardenError } from '../errors.ts';
import { ClusterSupervisor } from './cluster-supervisor.ts';
import type { DaemonPlan } from './daemon-config.ts';
import { objectiveWarnings } from './objectives-check.ts';
import { collectClusterStatus, type ClusterStatus } from './status.ts';

export interface DaemonOptions {
  plan: DaemonPlan;
  compression: Compression;
  /** Recipients to encrypt to and identities for verification restores (none: plaintext). */
  keys?: RepositoryKeys;
  logger?: Logger;
  /** Serve the status API (default true) as `plan.http` says: address, TLS, tokens. */
  http?: boolean;
  /** Opens a cluster's repository (default: a directory). */
  openStore?: (path: string) => ObjectStore;
  /** Scheduler tick and first retry delay; tests shorten them. */
  tickMs?: number;
  retryBaseMs?: number;
  daemonId?: string;
}

export interface DaemonStatus {
  daemon: { id?: string; startedAt: string; warnings: string[] };
  clusters: ClusterStatus[];
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
  private server: http.Server | https.Server | undefined;
  private startedAt = new Date();
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  readonly warnings: string[] = [];

  constructor(private readonly options: DaemonOptions) {
    this.logger = options.logger ?? silentLogger;
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
    const openStore = this.options.openStore ?? ((path: string) => new FsObjectStore(path));
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
      this.supervisors.push(
        new ClusterSupervisor({
          plan,
          connection: plan.connection,
          store: openStore(plan.repositoryPath),
          compression: this.options.compression,
          ...(this.options.keys ? { keys: this.options.keys } : {}),
          logger: this.logger,
          ...(this.options.tickMs !== undefined ? { tickMs: this.options.tickMs } : {}),
          ...(this.options.retryBaseMs !== undefined ? { retryBaseMs: this.options.retryBaseMs } : {}),
          ...(this.options.daemonId ? { daemonId: this.options.daemonId } : {}),
        }),
      );
    }
    if (this.options.http !== false) {
      const plan = this.options.plan.http;
      const app = createStatusApp(
        { status: () => this.status() },
        { http: plan, logger: this.logger.child({ component: 'http' }) },
      );
      const server = plan.tls
        ? https.createServer({ ...(await loadTlsCredentials(plan.tls)), minVersion: 'TLSv1.2' }, app)
        : http.createServer(app);
      const { host, port } = plan;
      await new Promise<void>((resolve, reject) => {
        server.once('error', (error: NodeJS.ErrnoException) =>
          reject(
            new WardenError(
              'WARDEN_E_USAGE',
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
  }

  async stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.starting?.catch(() => undefined);
      const server = this.server;
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
      await Promise.all(this.supervisors.map((supervisor) => supervisor.stop()));
    })();
    await this.stopping;
  }

  async status(): Promise<DaemonStatus> {
    const clusters = await Promise.all(
      this.supervisors.map((supervisor) => {
        const receiver = supervisor.receiverStatus();
        return collectClusterStatus({
          plan: supervisor.plan,
          store: (this.options.openStore ?? ((path: string) => new FsObjectStore(path)))(
            supervisor.plan.repositoryPath,
          ),
          ...(supervisor.plan.connection ? { connection: supervisor.plan.connection } : {}),
          live: { ...(receiver ? { receiver } : {}), jobs: supervisor.jobs() },
        });
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
