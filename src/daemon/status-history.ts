import type { Protection } from './protection.ts';
import type { DaemonStatus } from './status.ts';

/** One cluster's figures at one sample. */
export interface ClusterSample {
  name: string;
  protection: Protection;
  stream: string;
  lagBytes?: number;
  rpoExposureSeconds?: number;
}

export interface HistorySample {
  at: string;
  clusters: ClusterSample[];
}

/** What `GET /api/history` answers: the samples, oldest first. */
export interface HistorySnapshot {
  intervalMs: number;
  windowMs: number;
  samples: HistorySample[];
}

/**
 * The daemon's recent WAL lag and RPO exposure per cluster, in memory only: a ring of the last
 * `windowMs / intervalMs` samples, so memory stays the same however long the daemon runs. A
 * restart starts it empty (the dashboard's charts cover the last hours, not the daemon's life).
 */
export class StatusHistory {
  private readonly ring: (HistorySample | undefined)[];
  private next = 0;

  constructor(
    readonly intervalMs: number,
    readonly windowMs: number,
  ) {
    this.ring = new Array<HistorySample | undefined>(Math.max(1, Math.ceil(windowMs / intervalMs) + 1));
  }

  get capacity(): number {
    return this.ring.length;
  }

  record(status: DaemonStatus, at = new Date()): void {
    this.ring[this.next] = {
      at: at.toISOString(),
      clusters: status.clusters.map((c) => ({
        name: c.name,
        protection: c.protection,
        stream: c.walStream.state,
        ...(c.walStream.lagBytes !== undefined ? { lagBytes: c.walStream.lagBytes } : {}),
        ...(c.rpoExposureSeconds !== undefined ? { rpoExposureSeconds: c.rpoExposureSeconds } : {}),
      })),
    };
    this.next = (this.next + 1) % this.ring.length;
  }

  snapshot(): HistorySnapshot {
    const ordered = [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
    return {
      intervalMs: this.intervalMs,
      windowMs: this.windowMs,
      samples: ordered.filter((s): s is HistorySample => s !== undefined),
    };
  }
}
