import { describeDuration } from '../util/duration.ts';
import type { ConditionCode, ConditionInput } from './conditions.ts';

/**
 * The slice of a cluster's status (the daemon's `ClusterStatus`) the status conditions read,
 * described here so this layer does not import the daemon's types.
 */
export interface ClusterHealth {
  name: string;
  repository: { location: string; reachable: boolean; error?: { code: string; message: string } };
  walStream: {
    state: string;
    lastError?: { code: string; message: string };
    slot?: { name: string; retainedBytes?: number };
  };
  rpoExposureSeconds?: number;
  objectives: { rpoMs: number; rpo: string };
}

export interface StatusThresholds {
  streamDownAfterMs: number;
  slotRetentionBytes: number;
}

/** Stream states that are not "down": running, another daemon runs it, or streaming is off. */
const NOT_DOWN = new Set(['streaming', 'standby', 'unknown']);

export const STATUS_CONDITIONS: readonly ConditionCode[] = [
  'stream-down',
  'rpo-exceeded',
  'repository-unreachable',
  'slot-retention-high',
];

/**
 * Evaluates the status conditions of clusters, remembering since when each stream was seen
 * down (a stream must stay down for `streamDownAfterMs` before it fires).
 */
export class StatusConditions {
  private readonly downSince = new Map<string, number>();

  constructor(private readonly thresholds: StatusThresholds) {}

  /**
   * The conditions that hold for `cluster` now. `active` says which already fire: a stream
   * still down after a restart keeps firing without waiting the threshold again.
   */
  evaluate(cluster: ClusterHealth, now: Date, active: (code: ConditionCode) => boolean): ConditionInput[] {
    const at = now.toISOString();
    const base = { cluster: cluster.name, repository: cluster.repository.location, at };
    const out: ConditionInput[] = [];
    const stream = cluster.walStream;
    if (NOT_DOWN.has(stream.state)) this.downSince.delete(cluster.name);
    else {
      const since = this.downSince.get(cluster.name) ?? now.getTime();
      this.downSince.set(cluster.name, since);
      const downMs = now.getTime() - since;
      if (downMs >= this.thresholds.streamDownAfterMs || active('stream-down'))
        out.push({
          ...base,
          condition: 'stream-down',
          summary: `WAL stream ${stream.state} for ${describeDuration(downMs)}${stream.lastError ? `: ${stream.lastError.message} (${stream.lastError.code})` : ''}`,
          ...(stream.lastError ? { error: stream.lastError } : {}),
        });
    }
    const rpoMs = cluster.objectives.rpoMs;
    if (cluster.rpoExposureSeconds !== undefined && cluster.rpoExposureSeconds * 1000 > rpoMs)
      out.push({
        ...base,
        condition: 'rpo-exceeded',
        summary: `RPO exposure ${describeDuration(cluster.rpoExposureSeconds * 1000)} exceeds the objective ${cluster.objectives.rpo}`,
      });
    // A repository not created yet is not an outage: the first backup or the stream creates it.
    if (!cluster.repository.reachable && cluster.repository.error?.code !== 'WARDEN_E_REPO_NOT_INITIALIZED')
      out.push({
        ...base,
        condition: 'repository-unreachable',
        summary: `repository ${cluster.repository.location} unreachable${cluster.repository.error ? `: ${cluster.repository.error.message} (${cluster.repository.error.code})` : ''}`,
        ...(cluster.repository.error ? { error: cluster.repository.error } : {}),
      });
    const retained = stream.slot?.retainedBytes;
    if (retained !== undefined && retained > this.thresholds.slotRetentionBytes)
      out.push({
        ...base,
        condition: 'slot-retention-high',
        summary: `slot ${stream.slot!.name} keeps ${mib(retained)} of WAL on the server (threshold ${mib(this.thresholds.slotRetentionBytes)})`,
      });
    return out;
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}
