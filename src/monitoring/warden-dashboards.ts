import type { DashboardSpec } from './grafana-model.ts';

const C = 'cluster=~"$cluster"';
const UP_COLOURS = [
  { value: null, color: 'red' },
  { value: 1, color: 'green' },
];
const CLUSTER_VARIABLE = [{ name: 'cluster', label: 'cluster', metric: 'warden_up' }];

/** "Is the data safe?" at a glance: the question the users' backup-status dashboard answers. */
export const overviewDashboard: DashboardSpec = {
  uid: 'warden-overview',
  title: 'Warden / Overview',
  description: 'Data protection and database health per cluster: protected, at risk or failing.',
  tags: ['overview'],
  variables: CLUSTER_VARIABLE,
  rows: [
    {
      title: 'Data protection',
      panels: [
        {
          type: 'stat',
          title: 'Warden up',
          unit: 'none',
          queries: [{ expr: `warden_up{${C}}`, legend: '{{cluster}}' }],
          thresholds: UP_COLOURS,
          mappings: { '0': 'down', '1': 'up' },
        },
        {
          type: 'stat',
          title: 'WAL stream',
          unit: 'none',
          queries: [{ expr: `warden_wal_stream_up{${C}}`, legend: '{{cluster}}' }],
          thresholds: UP_COLOURS,
          mappings: { '0': 'down', '1': 'streaming' },
        },
        {
          type: 'stat',
          title: 'Repository',
          unit: 'none',
          queries: [{ expr: `warden_repository_reachable{${C}}`, legend: '{{repository}}' }],
          thresholds: UP_COLOURS,
          mappings: { '0': 'unreachable', '1': 'reachable' },
        },
        {
          type: 'stat',
          title: 'Last backup',
          unit: 'dateTimeFromNow',
          queries: [
            {
              expr: `max by (cluster) (warden_backup_last_success_timestamp_seconds{${C},kind=~"full|incremental"}) * 1000`,
              legend: '{{cluster}}',
            },
          ],
        },
        {
          type: 'stat',
          title: 'Failed backups (24 h)',
          unit: 'short',
          queries: [
            {
              expr: `sum by (cluster) (increase(warden_backup_failures_total{${C}}[24h]))`,
              legend: '{{cluster}}',
            },
          ],
          thresholds: [
            { value: null, color: 'green' },
            { value: 1, color: 'red' },
          ],
        },
        {
          type: 'stat',
          title: 'Restorable window',
          unit: 's',
          queries: [
            {
              expr: `warden_restorable_window_end_timestamp_seconds{${C}} - warden_restorable_window_start_timestamp_seconds{${C}}`,
              legend: '{{cluster}}',
            },
          ],
        },
        {
          type: 'timeseries',
          title: 'RPO exposure against objective',
          unit: 's',
          queries: [
            { expr: `warden_rpo_exposure_seconds{${C}}`, legend: '{{cluster}} exposure' },
            { expr: `warden_objective_rpo_seconds{${C}}`, legend: '{{cluster}} objective' },
          ],
        },
        {
          type: 'timeseries',
          title: 'WAL flush lag',
          unit: 's',
          queries: [{ expr: `warden_wal_flush_lag_seconds{${C}}`, legend: '{{cluster}}' }],
        },
      ],
    },
    {
      title: 'Databases and hosts',
      panels: [
        {
          type: 'stat',
          title: 'PostgreSQL',
          unit: 'none',
          queries: [{ expr: 'pg_up', legend: '{{instance}}' }],
          thresholds: UP_COLOURS,
          mappings: { '0': 'down', '1': 'up' },
        },
        {
          type: 'stat',
          title: 'Redis',
          unit: 'none',
          queries: [{ expr: 'redis_up', legend: '{{instance}}' }],
          thresholds: UP_COLOURS,
          mappings: { '0': 'down', '1': 'up' },
        },
        {
          type: 'timeseries',
          title: 'CPU busy',
          unit: 'percentunit',
          width: 8,
          queries: [
            {
              expr: '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[$__rate_interval]))',
              legend: '{{instance}}',
            },
          ],
        },
        {
          type: 'timeseries',
          title: 'Disk used',
          unit: 'percentunit',
          width: 8,
          queries: [
            {
              expr: '1 - node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"} / node_filesystem_size_bytes{fstype!~"tmpfs|overlay|squashfs"}',
              legend: '{{instance}} {{mountpoint}}',
            },
          ],
        },
      ],
    },
  ],
};

/** Backup status: success, duration, size, verification and drills, per cluster and kind. */
export const backupsDashboard: DashboardSpec = {
  uid: 'warden-backups',
  title: 'Warden / Backups',
  description:
    'Backup success, duration and size; verification, drills against objectives; repository and slot.',
  tags: ['backups'],
  variables: CLUSTER_VARIABLE,
  rows: [
    {
      title: 'Backups',
      panels: [
        {
          type: 'table',
          title: 'Last successful backup per kind',
          unit: 'dateTimeFromNow',
          width: 12,
          queries: [{ expr: `warden_backup_last_success_timestamp_seconds{${C}} * 1000` }],
        },
        {
          type: 'timeseries',
          title: 'Backup failures',
          unit: 'short',
          queries: [
            { expr: `increase(warden_backup_failures_total{${C}}[1h])`, legend: '{{cluster}} {{kind}}' },
          ],
        },
        {
          type: 'timeseries',
          title: 'Backup duration',
          unit: 's',
          queries: [{ expr: `warden_backup_last_duration_seconds{${C}}`, legend: '{{cluster}} {{kind}}' }],
        },
        {
          type: 'timeseries',
          title: 'Backup size',
          unit: 'bytes',
          queries: [
            { expr: `warden_backup_last_size_bytes{${C}}`, legend: '{{cluster}} {{kind}} {{stage}}' },
          ],
        },
      ],
    },
    {
      title: 'Verification and drills',
      panels: [
        {
          type: 'stat',
          title: 'Last verification',
          unit: 'none',
          queries: [{ expr: `warden_verification_passed{${C}}`, legend: '{{cluster}}' }],
          thresholds: UP_COLOURS,
          mappings: { '0': 'failed', '1': 'passed' },
        },
        {
          type: 'stat',
          title: 'Verified',
          unit: 'dateTimeFromNow',
          queries: [
            {
              expr: `warden_verification_last_success_timestamp_seconds{${C}} * 1000`,
              legend: '{{cluster}}',
            },
          ],
        },
        {
          type: 'stat',
          title: 'Last drill',
          unit: 'none',
          queries: [{ expr: `warden_drill_passed{${C}}`, legend: '{{cluster}}' }],
          thresholds: UP_COLOURS,
          mappings: { '0': 'failed', '1': 'passed' },
        },
        {
          type: 'stat',
          title: 'Drilled',
          unit: 'dateTimeFromNow',
          queries: [{ expr: `warden_drill_last_timestamp_seconds{${C}} * 1000`, legend: '{{cluster}}' }],
        },
        {
          type: 'timeseries',
          title: 'Drill RTO against objective',
          unit: 's',
          width: 12,
          queries: [
            { expr: `warden_drill_rto_seconds{${C}}`, legend: '{{cluster}} measured' },
            { expr: `warden_objective_rto_seconds{${C}}`, legend: '{{cluster}} objective' },
          ],
        },
        {
          type: 'timeseries',
          title: 'Drill RPO against objective',
          unit: 's',
          width: 12,
          queries: [
            { expr: `warden_drill_rpo_seconds{${C}}`, legend: '{{cluster}} measured' },
            { expr: `warden_objective_rpo_seconds{${C}}`, legend: '{{cluster}} objective' },
          ],
        },
      ],
    },
    {
      title: 'WAL, repository and jobs',
      panels: [
        {
          type: 'timeseries',
          title: 'WAL flush lag (bytes)',
          unit: 'bytes',
          queries: [{ expr: `warden_wal_flush_lag_bytes{${C}}`, legend: '{{cluster}}' }],
        },
        {
          type: 'timeseries',
          title: 'WAL retained by the slot',
          unit: 'bytes',
          queries: [{ expr: `warden_slot_retained_wal_bytes{${C}}`, legend: '{{cluster}}' }],
        },
        {
          type: 'timeseries',
          title: 'Repository size',
          unit: 'bytes',
          queries: [{ expr: `warden_repository_size_bytes{${C}}`, legend: '{{repository}}' }],
        },
        {
          type: 'table',
          title: 'Jobs: last run per outcome',
          unit: 'dateTimeFromNow',
          queries: [{ expr: `warden_job_last_run_timestamp_seconds{${C}} * 1000` }],
        },
      ],
    },
  ],
};
