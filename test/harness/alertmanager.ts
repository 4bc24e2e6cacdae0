import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { freePort } from '../../src/util/free-port.ts';
import { startLoopbackProcess, type LoopbackProcess } from './loopback-process.ts';
import { tempDir } from './temp-dir.ts';

/**
 * Debian's Alertmanager on a loopback port, routing every alert to one webhook with resolved
 * notifications, grouped per alert and cluster, with second-long waits so a test sees a
 * notification within seconds. Clustering (gossip on 0.0.0.0:9094 by default) is off.
 */
export async function startAlertmanager(options: { webhookUrl: string }): Promise<LoopbackProcess> {
  const dir = await tempDir('alertmanager');
  const config = {
    route: {
      receiver: 'webhook',
      group_by: ['alertname', 'cluster', 'instance'],
      group_wait: '1s',
      group_interval: '1s',
      repeat_interval: '1h',
    },
    receivers: [{ name: 'webhook', webhook_configs: [{ url: options.webhookUrl, send_resolved: true }] }],
  };
  const configFile = path.join(dir, 'alertmanager.yml');
  await writeFile(configFile, stringify(config));
  const port = await freePort();
  return startLoopbackProcess({
    name: 'alertmanager',
    command: 'prometheus-alertmanager',
    args: [
      `--config.file=${configFile}`,
      `--storage.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--cluster.listen-address=',
    ],
    port,
    readyPath: '/-/ready',
  });
}
