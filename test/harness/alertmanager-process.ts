import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../../src/util/free-port.ts';
import { onExit } from './cleanup.ts';
import { tempDir } from './temp-dir.ts';
import { waitFor } from './spawned-warden.ts';

export const ALERTMANAGER_BIN = '/usr/bin/prometheus-alertmanager';

/** A real Alertmanager (Debian's prometheus-alertmanager) on a free loopback port, alone. */
export interface TestAlertmanager {
  url: string;
  /** Posts alerts as Prometheus would (`POST /api/v2/alerts`). */
  post(
    alerts: Array<{ labels: Record<string, string>; annotations?: Record<string, string> }>,
  ): Promise<void>;
  stop(): Promise<void>;
}

export async function startAlertmanager(): Promise<TestAlertmanager> {
  const dir = await tempDir('alertmanager');
  const config = path.join(dir, 'alertmanager.yml');
  // One receiver that sends nothing: the tests read the alerts through the API.
  await writeFile(config, 'route:\n  receiver: none\nreceivers:\n  - name: none\n');
  const port = await freePort();
  const child: ChildProcess = spawn(
    ALERTMANAGER_BIN,
    [
      `--config.file=${config}`,
      `--storage.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      // No gossip with other Alertmanagers (and no port for it).
      '--cluster.listen-address=',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  const removeHook = onExit(() => child.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}/`;
  try {
    await waitFor(`Alertmanager on port ${port}`, 30_000, async () => {
      if (child.exitCode !== null) throw new Error(`alertmanager exited: ${log}`);
      return (await fetch(`${url}-/ready`).catch(() => undefined))?.ok === true;
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    url,
    async post(alerts) {
      const startsAt = new Date().toISOString();
      const endsAt = new Date(Date.now() + 3_600_000).toISOString();
      const response = await fetch(`${url}api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(alerts.map((a) => ({ ...a, startsAt, endsAt }))),
      });
      if (!response.ok) throw new Error(`alertmanager refused the alerts: HTTP ${response.status}`);
    },
    async stop() {
      removeHook();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}
