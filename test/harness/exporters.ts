import { freePort } from '../../src/util/free-port.ts';
import { startLoopbackProcess, type LoopbackProcess } from './loopback-process.ts';

/**
 * The replication-lag query (`pg_replication_lag`) ships with Debian's postgres_exporter as an
 * example; docs/monitoring.md tells users to pass it with --extend.query-path as the tests do.
 */
export const POSTGRES_EXPORTER_QUERIES = '/usr/share/doc/prometheus-postgres-exporter/examples/queries.yaml';

/** Debian's postgres_exporter against `url` (passed in the environment: no password on a command line). */
export async function startPostgresExporter(url: string): Promise<LoopbackProcess> {
  const port = await freePort();
  return startLoopbackProcess({
    name: 'postgres_exporter',
    command: 'prometheus-postgres-exporter',
    args: [`--web.listen-address=127.0.0.1:${port}`, `--extend.query-path=${POSTGRES_EXPORTER_QUERIES}`],
    env: { DATA_SOURCE_NAME: url },
    port,
    readyPath: '/metrics',
  });
}

/** Debian's redis_exporter against a loopback Redis. */
export async function startRedisExporter(redisPort: number): Promise<LoopbackProcess> {
  const port = await freePort();
  return startLoopbackProcess({
    name: 'redis_exporter',
    command: 'prometheus-redis-exporter',
    args: ['-web.listen-address', `127.0.0.1:${port}`, '-redis.addr', `redis://127.0.0.1:${redisPort}`],
    port,
    readyPath: '/metrics',
  });
}

/**
 * Debian's node_exporter for this host. `collectors` limits it to the named ones (the e2e test
 * scrapes every second and needs only a few); default: the exporter's own default set.
 */
export async function startNodeExporter(collectors?: string[]): Promise<LoopbackProcess> {
  const port = await freePort();
  const only = collectors
    ? ['--collector.disable-defaults', ...collectors.map((name) => `--collector.${name}`)]
    : [];
  return startLoopbackProcess({
    name: 'node_exporter',
    command: 'prometheus-node-exporter',
    args: [`--web.listen-address=127.0.0.1:${port}`, ...only],
    port,
    readyPath: '/metrics',
  });
}

/**
 * The metric names in a Prometheus text exposition, with the series names a histogram or summary
 * expands to (`_bucket`, `_sum`, `_count`) as they appear.
 */
export function exposedMetricNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Za-z_:][A-Za-z0-9_:]*)/.exec(line);
    if (match) names.add(match[1]!);
  }
  return names;
}
