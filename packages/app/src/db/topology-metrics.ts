import { exportMetrics, type FamilySpec, type Sample } from '../metrics/metric-family.ts';
import type { MetricsOptions } from '../metrics/metrics-options.ts';
import type { TopologyStats } from './topology-refresher.ts';

/**
 * The router's Patroni refreshes, next to the pools' `hikaricp_*` families and labelled the same
 * way (`pool` is not meaningful here: the label is `database`, `metrics.name` or `default`).
 */
export const TOPOLOGY_FAMILIES = [
  {
    name: 'warden_db_topology_refreshes_total',
    help: 'Reads of Patroni /cluster by the router, by result (ok, failed, leaderless)',
    type: 'counter',
  },
  {
    name: 'warden_db_topology_invalid_total',
    help: 'Patroni answers or member entries refused as invalid, by kind (endpoint, member)',
    type: 'counter',
  },
  {
    name: 'warden_db_topology_changes_total',
    help: 'Patroni answers that changed the router membership or leader',
    type: 'counter',
  },
  { name: 'warden_db_topology_members', help: 'Members the router routes to, from Patroni', type: 'gauge' },
  {
    name: 'warden_db_topology_last_success_timestamp_seconds',
    help: 'When Patroni last answered a valid /cluster (Unix time; 0 before the first)',
    type: 'gauge',
  },
] as const satisfies readonly FamilySpec[];

/** What the exporter reads, at scrape time only. */
export interface MeasuredTopology {
  stats(): TopologyStats;
}

function collect(family: string, source: MeasuredTopology, database: string, out: Sample[]): void {
  const s = source.stats();
  const labels = { database };
  switch (family) {
    case 'warden_db_topology_refreshes_total':
      out.push({ labels: { ...labels, result: 'ok' }, value: s.refreshes - s.leaderless });
      out.push({ labels: { ...labels, result: 'leaderless' }, value: s.leaderless });
      out.push({ labels: { ...labels, result: 'failed' }, value: s.failures });
      return;
    case 'warden_db_topology_invalid_total':
      out.push({ labels: { ...labels, kind: 'endpoint' }, value: s.endpointFailures });
      out.push({ labels: { ...labels, kind: 'member' }, value: s.ignoredMembers });
      return;
    case 'warden_db_topology_changes_total':
      return void out.push({ labels, value: s.changes });
    case 'warden_db_topology_members':
      return void out.push({ labels, value: s.members });
    case 'warden_db_topology_last_success_timestamp_seconds':
      return void out.push({ labels, value: (s.lastSuccessAt ?? 0) / 1000 });
  }
}

/** Exports one router's topology refreshes; returns the function that stops exporting them. */
export function exportTopologyMetrics(metrics: MetricsOptions, source: MeasuredTopology): () => void {
  const database = metrics.name ?? 'default';
  return exportMetrics(metrics.registry, TOPOLOGY_FAMILIES, database, (family, out) =>
    collect(family, source, database, out),
  );
}
