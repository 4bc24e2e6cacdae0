import type { AlertGroup } from './alert-rule.ts';

const MINUTE = 60_000;

/**
 * Filesystems worth alerting on: real ones. Pseudo filesystems (tmpfs, overlay layers, squashfs
 * snaps) are full or small by design and would page for nothing.
 */
const REAL_FILESYSTEMS = 'fstype!~"tmpfs|ramfs|devtmpfs|overlay|squashfs|nsfs|fuse.*",mountpoint!~"/boot.*"';

/**
 * General health from the ecosystem's exporters, with their own metric names so the teams'
 * existing dashboards and habits apply: postgres_exporter (`pg_*`), redis_exporter (`redis_*`),
 * node_exporter (`node_*`) and Micrometer's HikariCP binder (`hikaricp_*`, which Warden's service
 * library exports under the same names). Thresholds and hold times are requirements §5.
 */
export function healthAlertGroups(): AlertGroup[] {
  return [
    {
      name: 'warden.postgresql',
      alerts: [
        {
          alert: 'PostgresDown',
          expr: 'pg_up == 0',
          holdMs: MINUTE,
          severity: 'critical',
          summary: 'PostgreSQL is unreachable',
          description: 'postgres_exporter {{ $labels.instance }} cannot reach its PostgreSQL server.',
          runbook: 'postgresdown',
        },
        {
          alert: 'PostgresReplicationLagWarning',
          expr: 'pg_replication_lag > 10',
          holdMs: 2 * MINUTE,
          severity: 'warning',
          summary: 'A PostgreSQL replica is more than 10 s behind',
          description:
            'Replica {{ $labels.instance }} replays {{ $value | humanizeDuration }} behind its primary.',
          runbook: 'postgresreplicationlagwarning',
        },
        {
          alert: 'PostgresReplicationLagCritical',
          expr: 'pg_replication_lag > 30',
          holdMs: 2 * MINUTE,
          severity: 'critical',
          summary: 'A PostgreSQL replica is more than 30 s behind',
          description:
            'Replica {{ $labels.instance }} replays {{ $value | humanizeDuration }} behind its primary.',
          runbook: 'postgresreplicationlagcritical',
        },
        {
          alert: 'PostgresConnectionsHigh',
          expr:
            'sum by (job, instance, server) (pg_stat_activity_count)' +
            ' / max by (job, instance, server) (pg_settings_max_connections) > 0.8',
          holdMs: 5 * MINUTE,
          severity: 'warning',
          summary: 'PostgreSQL connections above 80 % of max_connections',
          description: '{{ $labels.server }} uses {{ $value | humanizePercentage }} of max_connections.',
          runbook: 'postgresconnectionshigh',
        },
      ],
    },
    {
      name: 'warden.redis',
      alerts: [
        {
          alert: 'RedisDown',
          expr: 'redis_up == 0',
          holdMs: MINUTE,
          severity: 'critical',
          summary: 'Redis is unreachable',
          description: 'redis_exporter {{ $labels.instance }} cannot reach its Redis server.',
          runbook: 'redisdown',
        },
        {
          alert: 'RedisConnectionsHigh',
          expr: 'redis_connected_clients / redis_config_maxclients > 0.8',
          holdMs: 5 * MINUTE,
          severity: 'warning',
          summary: 'Redis clients above 80 % of maxclients',
          description: '{{ $labels.instance }} serves {{ $value | humanizePercentage }} of maxclients.',
          runbook: 'redisconnectionshigh',
        },
      ],
    },
    {
      name: 'warden.host',
      alerts: [
        {
          alert: 'HostDiskUsageHigh',
          expr:
            `(1 - node_filesystem_avail_bytes{${REAL_FILESYSTEMS}}` +
            ` / node_filesystem_size_bytes{${REAL_FILESYSTEMS}}) * 100 > 85`,
          holdMs: 5 * MINUTE,
          severity: 'critical',
          summary: 'A filesystem is more than 85 % full',
          description:
            '{{ $labels.mountpoint }} on {{ $labels.instance }} is {{ $value | printf "%.0f" }} % full.',
          runbook: 'hostdiskusagehigh',
        },
        {
          alert: 'HostDiskFreeLow',
          expr: `node_filesystem_avail_bytes{${REAL_FILESYSTEMS}} < 10e9`,
          holdMs: 5 * MINUTE,
          severity: 'critical',
          summary: 'A filesystem has less than 10 GB free',
          description:
            '{{ $labels.mountpoint }} on {{ $labels.instance }} has {{ $value | humanize1024 }}B free.',
          runbook: 'hostdiskfreelow',
        },
        {
          alert: 'HostDiskReadLatencyHigh',
          expr:
            'rate(node_disk_read_time_seconds_total[5m])' +
            ' / rate(node_disk_reads_completed_total[5m]) > 0.1',
          holdMs: 5 * MINUTE,
          severity: 'warning',
          summary: 'Disk reads take more than 100 ms',
          description:
            '{{ $labels.device }} on {{ $labels.instance }}: {{ $value | humanizeDuration }} per read.',
          runbook: 'hostdiskreadlatencyhigh',
        },
        {
          alert: 'HostDiskWriteLatencyHigh',
          expr:
            'rate(node_disk_write_time_seconds_total[5m])' +
            ' / rate(node_disk_writes_completed_total[5m]) > 0.1',
          holdMs: 5 * MINUTE,
          severity: 'warning',
          summary: 'Disk writes take more than 100 ms',
          description:
            '{{ $labels.device }} on {{ $labels.instance }}: {{ $value | humanizeDuration }} per write.',
          runbook: 'hostdiskwritelatencyhigh',
        },
        {
          alert: 'HostCpuHigh',
          expr: '100 * (1 - avg by (job, instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))) > 80',
          holdMs: 5 * MINUTE,
          severity: 'warning',
          summary: 'CPU busier than 80 %',
          description: '{{ $labels.instance }} is {{ $value | printf "%.0f" }} % busy.',
          runbook: 'hostcpuhigh',
        },
        {
          alert: 'ScrapeTargetDown',
          expr: 'up == 0',
          holdMs: 5 * MINUTE,
          severity: 'warning',
          summary: 'Prometheus cannot scrape a target',
          description:
            '{{ $labels.job }} target {{ $labels.instance }} does not answer: the alerts based on it cannot fire.',
          runbook: 'scrapetargetdown',
        },
      ],
    },
    {
      name: 'warden.connection-pools',
      alerts: [
        {
          alert: 'ConnectionPoolExhausted',
          expr: 'hikaricp_connections_pending > 0 and hikaricp_connections_active >= hikaricp_connections_max',
          holdMs: 5 * MINUTE,
          severity: 'critical',
          summary: 'A connection pool is at its maximum size with callers waiting',
          description:
            'Pool {{ $labels.pool }} on {{ $labels.instance }} has {{ $value }} callers waiting for a connection.',
          runbook: 'connectionpoolexhausted',
        },
      ],
    },
  ];
}
