import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../../src/util/free-port.ts';
import { startLoopbackProcess, type LoopbackProcess } from './loopback-process.ts';
import { tempDir } from './temp-dir.ts';

/** A Prometheus alert as `/api/v1/alerts` lists it. */
export interface PrometheusAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
}

export interface TestPrometheus extends LoopbackProcess {
  /** Instant query; the result vector. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  alerts(): Promise<PrometheusAlert[]>;
  /** The scrape targets' health by job. */
  targets(): Promise<{ job: string; health: string; lastError: string }[]>;
}

/**
 * Debian's Prometheus on a loopback port with a 1 s scrape and evaluation interval, the given
 * rule file, the given scrape jobs (`job → host:port` targets, plain HTTP on /metrics) and an
 * Alertmanager to notify. Alerts are resent every second so a restarted receiver catches up fast.
 */
export async function startPrometheus(options: {
  rules: string;
  jobs: Record<string, string[]>;
  alertmanagerPort: number;
  /** Extra per-job settings, e.g. `{ warden: { authorization: … } }`. */
  jobSettings?: Record<string, Record<string, unknown>>;
}): Promise<TestPrometheus> {
  const dir = await tempDir('prometheus');
  const rulesFile = path.join(dir, 'rules.yml');
  await writeFile(rulesFile, options.rules);
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: [rulesFile],
    alerting: {
      alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${options.alertmanagerPort}`] }] }],
    },
    scrape_configs: Object.entries(options.jobs).map(([job, targets]) => ({
      job_name: job,
      static_configs: [{ targets }],
      ...options.jobSettings?.[job],
    })),
  };
  const configFile = path.join(dir, 'prometheus.yml');
  await writeFile(configFile, stringify(config));
  const port = await freePort();
  const server = await startLoopbackProcess({
    name: 'prometheus',
    command: 'prometheus',
    args: [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--rules.alert.resend-delay=1s',
    ],
    port,
    readyPath: '/-/ready',
  });
  const api = async <T>(pathAndQuery: string): Promise<T> => {
    const response = await fetch(`${server.url}${pathAndQuery}`);
    const body = (await response.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${pathAndQuery}: ${body.error}`);
    return body.data;
  };
  return {
    ...server,
    query: async (expr) =>
      (
        await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
          `/api/v1/query?query=${encodeURIComponent(expr)}`,
        )
      ).result,
    alerts: async () => (await api<{ alerts: PrometheusAlert[] }>('/api/v1/alerts')).alerts,
    targets: async () =>
      (
        await api<{ activeTargets: { labels: { job: string }; health: string; lastError: string }[] }>(
          '/api/v1/targets',
        )
      ).activeTargets.map((target) => ({
        job: target.labels.job,
        health: target.health,
        lastError: target.lastError,
      })),
  };
}
