import type { DashboardSpec } from './grafana-model.ts';

const I = 'instance=~"$instance"';
const R = '$__rate_interval';
const UP_COLOURS = [
  { value: null, color: 'red' },
  { value: 1, color: 'green' },
];

/** The users' "database overview": connections, query throughput, replication, I/O (postgres_exporter names). */
export const postgresDashboard: DashboardSpec = {
  uid: 'warden-postgresql',
  title: 'Warden / PostgreSQL',
  description: 'postgres_exporter and node_exporter metrics: connections, throughput, replication lag, I/O.',
  tags: ['postgresql'],
  variables: [{ name: 'instance', label: 'instance', metric: 'pg_up' }],
  rows: [
    {
      title: 'Availability and connections',
      panels: [
        {
          type: 'stat',
          title: 'Up',
          unit: 'none',
          queries: [{ expr: `pg_up{${I}}`, legend: '{{instance}}' }],
          thresholds: UP_COLOURS,
          mappings: { '0': 'down', '1': 'up' },
        },
        {
          type: 'timeseries',
          title: 'Connections against max_connections',
          unit: 'short',
          width: 20,
          queries: [
            { expr: `sum by (instance) (pg_stat_activity_count{${I}})`, legend: '{{instance}} connections' },
            {
              expr: `max by (instance) (pg_settings_max_connections{${I}})`,
              legend: '{{instance}} max_connections',
            },
          ],
        },
        {
          type: 'timeseries',
          title: 'Connections by state',
          unit: 'short',
          queries: [{ expr: `sum by (state) (pg_stat_activity_count{${I}})`, legend: '{{state}}' }],
        },
        {
          type: 'timeseries',
          title: 'Replication lag',
          unit: 's',
          queries: [{ expr: `pg_replication_lag{${I}}`, legend: '{{instance}}' }],
        },
      ],
    },
    {
      title: 'Throughput and I/O',
      panels: [
        {
          type: 'timeseries',
          title: 'Transactions per second',
          unit: 'ops',
          queries: [
            {
              expr: `sum by (instance) (rate(pg_stat_database_xact_commit{${I}}[${R}]))`,
              legend: '{{instance}} commits',
            },
            {
              expr: `sum by (instance) (rate(pg_stat_database_xact_rollback{${I}}[${R}]))`,
              legend: '{{instance}} rollbacks',
            },
          ],
        },
        {
          type: 'timeseries',
          title: 'Buffer cache hit ratio',
          unit: 'percentunit',
          queries: [
            {
              expr:
                `sum by (instance) (rate(pg_stat_database_blks_hit{${I}}[${R}])) / (sum by (instance) (rate(pg_stat_database_blks_hit{${I}}[${R}]))` +
                ` + sum by (instance) (rate(pg_stat_database_blks_read{${I}}[${R}])))`,
              legend: '{{instance}}',
            },
          ],
        },
        {
          type: 'timeseries',
          title: 'Rows per second',
          unit: 'ops',
          queries: [
            {
              expr: `sum by (instance) (rate(pg_stat_database_tup_fetched{${I}}[${R}]))`,
              legend: '{{instance}} fetched',
            },
            {
              expr: `sum by (instance) (rate(pg_stat_database_tup_inserted{${I}}[${R}]))`,
              legend: '{{instance}} inserted',
            },
            {
              expr: `sum by (instance) (rate(pg_stat_database_tup_updated{${I}}[${R}]))`,
              legend: '{{instance}} updated',
            },
            {
              expr: `sum by (instance) (rate(pg_stat_database_tup_deleted{${I}}[${R}]))`,
              legend: '{{instance}} deleted',
            },
          ],
        },
        {
          type: 'timeseries',
          title: 'Deadlocks and temp bytes',
          unit: 'short',
          queries: [
            {
              expr: `sum by (instance) (increase(pg_stat_database_deadlocks{${I}}[${R}]))`,
              legend: '{{instance}} deadlocks',
            },
            {
              expr: `sum by (instance) (rate(pg_stat_database_temp_bytes{${I}}[${R}]))`,
              legend: '{{instance}} temp bytes/s',
            },
          ],
        },
        {
          type: 'timeseries',
          title: 'Database size',
          unit: 'bytes',
          queries: [{ expr: `pg_database_size_bytes{${I}}`, legend: '{{instance}} {{datname}}' }],
        },
        {
          type: 'timeseries',
          title: 'Disk latency per I/O (host)',
          unit: 's',
          queries: [
            {
              expr: `rate(node_disk_read_time_seconds_total[${R}]) / rate(node_disk_reads_completed_total[${R}])`,
              legend: '{{instance}} {{device}} read',
            },
            {
              expr: `rate(node_disk_write_time_seconds_total[${R}]) / rate(node_disk_writes_completed_total[${R}])`,
              legend: '{{instance}} {{device}} write',
            },
          ],
        },
        {
          type: 'timeseries',
          title: 'Memory available (host)',
          unit: 'percentunit',
          queries: [
            { expr: 'node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes', legend: '{{instance}}' },
          ],
        },
      ],
    },
  ],
};

/** The users' Redis dashboard: memory, evictions, hit ratio, clients (redis_exporter names). */
export const redisDashboard: DashboardSpec = {
  uid: 'warden-redis',
  title: 'Warden / Redis',
  description:
    'redis_exporter metrics: memory against maxmemory, evictions, hit ratio, clients, command latency.',
  tags: ['redis'],
  variables: [{ name: 'instance', label: 'instance', metric: 'redis_up' }],
  rows: [
    {
      title: 'Redis',
      panels: [
        {
          type: 'stat',
          title: 'Up',
          unit: 'none',
          queries: [{ expr: `redis_up{${I}}`, legend: '{{instance}}' }],
          thresholds: UP_COLOURS,
          mappings: { '0': 'down', '1': 'up' },
        },
        {
          type: 'timeseries',
          title: 'Memory against maxmemory',
          unit: 'bytes',
          width: 20,
          queries: [
            { expr: `redis_memory_used_bytes{${I}}`, legend: '{{instance}} used' },
            { expr: `redis_memory_max_bytes{${I}}`, legend: '{{instance}} maxmemory' },
          ],
        },
        {
          type: 'timeseries',
          title: 'Cache hit ratio',
          unit: 'percentunit',
          queries: [
            {
              expr:
                `rate(redis_keyspace_hits_total{${I}}[${R}]) / (rate(redis_keyspace_hits_total{${I}}[${R}])` +
                ` + rate(redis_keyspace_misses_total{${I}}[${R}]))`,
              legend: '{{instance}}',
            },
          ],
        },
        {
          type: 'timeseries',
          title: 'Evicted and expired keys',
          unit: 'ops',
          queries: [
            { expr: `rate(redis_evicted_keys_total{${I}}[${R}])`, legend: '{{instance}} evicted' },
            { expr: `rate(redis_expired_keys_total{${I}}[${R}])`, legend: '{{instance}} expired' },
          ],
        },
        {
          type: 'timeseries',
          title: 'Clients against maxclients',
          unit: 'short',
          queries: [
            { expr: `redis_connected_clients{${I}}`, legend: '{{instance}} clients' },
            { expr: `redis_config_maxclients{${I}}`, legend: '{{instance}} maxclients' },
          ],
        },
        {
          type: 'timeseries',
          title: 'Commands per second and mean latency',
          unit: 'short',
          queries: [
            {
              expr: `sum by (instance) (rate(redis_commands_total{${I}}[${R}]))`,
              legend: '{{instance}} commands/s',
            },
            {
              expr: `sum by (instance) (rate(redis_commands_duration_seconds_total{${I}}[${R}])) / sum by (instance) (rate(redis_commands_total{${I}}[${R}]))`,
              legend: '{{instance}} seconds per command',
            },
          ],
        },
        {
          type: 'timeseries',
          title: 'Keys per database',
          unit: 'short',
          queries: [{ expr: `redis_db_keys{${I}}`, legend: '{{instance}} {{db}}' }],
        },
      ],
    },
  ],
};

/**
 * The services' side, as the service library exports it (opt-in `metrics: { registry }`): pools
 * under Micrometer's HikariCP names, cache, sessions and rate limiter (docs/service-library.md).
 */
export const dataLayerDashboard: DashboardSpec = {
  uid: 'warden-data-layer',
  title: 'Warden / Data layer',
  description:
    'Connection pools of the services (hikaricp_* as Micrometer names them): use, waiters, acquire time, timeouts.',
  tags: ['data-layer'],
  variables: [{ name: 'pool', label: 'pool', metric: 'hikaricp_connections_max' }],
  rows: [
    {
      title: 'Connection pools',
      panels: [
        {
          type: 'timeseries',
          title: 'Connections: active, idle, max',
          unit: 'short',
          queries: [
            { expr: 'hikaricp_connections_active{pool=~"$pool"}', legend: '{{pool}} active' },
            { expr: 'hikaricp_connections_idle{pool=~"$pool"}', legend: '{{pool}} idle' },
            { expr: 'hikaricp_connections_max{pool=~"$pool"}', legend: '{{pool}} max' },
            { expr: 'hikaricp_connections_min{pool=~"$pool"}', legend: '{{pool}} min' },
          ],
        },
        {
          type: 'timeseries',
          title: 'Callers waiting for a connection',
          unit: 'short',
          queries: [{ expr: 'hikaricp_connections_pending{pool=~"$pool"}', legend: '{{pool}}' }],
        },
        {
          type: 'timeseries',
          title: 'Mean acquire time',
          unit: 's',
          queries: [
            {
              expr: `rate(hikaricp_connections_acquire_seconds_sum{pool=~"$pool"}[${R}]) / rate(hikaricp_connections_acquire_seconds_count{pool=~"$pool"}[${R}])`,
              legend: '{{pool}}',
            },
          ],
        },
        {
          type: 'timeseries',
          title: 'Mean time a connection is held',
          unit: 's',
          queries: [
            {
              expr: `rate(hikaricp_connections_usage_seconds_sum{pool=~"$pool"}[${R}]) / rate(hikaricp_connections_usage_seconds_count{pool=~"$pool"}[${R}])`,
              legend: '{{pool}}',
            },
          ],
        },
        {
          type: 'timeseries',
          title: 'Acquire timeouts',
          unit: 'short',
          queries: [
            { expr: `increase(hikaricp_connections_timeout_total{pool=~"$pool"}[${R}])`, legend: '{{pool}}' },
          ],
        },
        {
          type: 'timeseries',
          title: 'PostgreSQL connections against max_connections',
          description: 'All pools of all replicas must stay below the server limit.',
          unit: 'short',
          queries: [
            { expr: 'sum(hikaricp_connections_max)', legend: 'pools max (all services)' },
            { expr: 'max(pg_settings_max_connections)', legend: 'max_connections' },
          ],
        },
      ],
    },
    {
      title: 'Cache, sessions and rate limits',
      panels: [
        {
          type: 'timeseries',
          title: 'Cache hit ratio',
          description: 'Reads answered from the in-process tier or Redis, against all reads.',
          unit: 'percentunit',
          queries: [
            {
              expr: `sum by (cache) (rate(warden_cache_hits_total[${R}])) / (sum by (cache) (rate(warden_cache_hits_total[${R}])) + sum by (cache) (rate(warden_cache_misses_total[${R}])))`,
              legend: '{{cache}}',
            },
          ],
        },
        {
          type: 'timeseries',
          title: 'Cache loads and Redis errors',
          unit: 'ops',
          queries: [
            { expr: `sum by (cache) (rate(warden_cache_loads_total[${R}]))`, legend: '{{cache}} loads' },
            { expr: `sum by (cache) (rate(warden_cache_errors_total[${R}]))`, legend: '{{cache}} errors' },
          ],
        },
        {
          type: 'timeseries',
          title: 'Circuit breakers open',
          description: 'Redis considered down by a cache or a rate limiter: served without it meanwhile.',
          unit: 'short',
          queries: [
            { expr: 'warden_cache_breaker_state{state="open"}', legend: 'cache {{cache}}' },
            { expr: 'warden_ratelimit_breaker_state{state="open"}', legend: 'limiter {{limiter}}' },
          ],
        },
        {
          type: 'timeseries',
          title: 'Sessions created and ended',
          unit: 'ops',
          queries: [
            {
              expr: `sum by (store) (rate(warden_sessions_created_total[${R}]))`,
              legend: '{{store}} created',
            },
            { expr: `sum by (store) (rate(warden_sessions_ended_total[${R}]))`, legend: '{{store}} ended' },
            { expr: `sum by (store) (rate(warden_sessions_errors_total[${R}]))`, legend: '{{store}} errors' },
          ],
        },
        {
          type: 'timeseries',
          title: 'Rate limiter decisions',
          unit: 'ops',
          queries: [
            {
              expr: `sum by (limiter, result) (rate(warden_ratelimit_requests_total[${R}]))`,
              legend: '{{limiter}} {{result}}',
            },
            {
              expr: `sum by (limiter) (rate(warden_ratelimit_fallbacks_total[${R}]))`,
              legend: '{{limiter}} without Redis',
            },
          ],
        },
      ],
    },
  ],
};
