import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { openSync, closeSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort } from '../../src/util/free-port.ts';
import { onExit } from './cleanup.ts';

/** A single-member etcd (v3 API) a test started; `stop()` kills only this process. */
export interface TestEtcd {
  /** Client URL, e.g. `http://127.0.0.1:40123`. */
  readonly clientUrl: string;
  /** `127.0.0.1:<port>` (Patroni's `etcd3.host`). */
  readonly hostPort: string;
  readonly pid: number;
  logTail(): string;
  stop(): Promise<void>;
}

const ETCD_BIN = process.env.WARDEN_ETCD_BIN ?? '/usr/bin/etcd';

/**
 * Starts etcd 3.4 on two free loopback ports (client, peer) with its data in `dir/etcd`
 * (the caller owns and removes `dir`). Tuned for a loaded test machine: short heartbeat,
 * no fsync worth waiting for (`--unsafe-no-fsync`).
 */
export async function startEtcd(dir: string): Promise<TestEtcd> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startOnce(dir, attempt);
    } catch (error) {
      if (attempt >= 3) throw error;
    }
  }
}

async function startOnce(dir: string, attempt: number): Promise<TestEtcd> {
  const clientPort = await freePort();
  const peerPort = await freePort();
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const logPath = path.join(dir, `etcd-${attempt}.log`);
  const logFd = openSync(logPath, 'a');
  const child: ChildProcess = spawn(
    ETCD_BIN,
    [
      '--name',
      'warden-test',
      '--data-dir',
      path.join(dir, `etcd-${attempt}`),
      '--listen-client-urls',
      clientUrl,
      '--advertise-client-urls',
      clientUrl,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      `warden-test=${peerUrl}`,
      '--unsafe-no-fsync',
      '--heartbeat-interval',
      '100',
      '--election-timeout',
      '1000',
    ],
    { stdio: ['ignore', logFd, logFd] },
  );
  closeSync(logFd);
  const pid = child.pid!;
  const removeHook = onExit(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const logTail = () => {
    try {
      return readFileSync(logPath, 'utf8').slice(-4000);
    } catch {
      return '';
    }
  };
  const stop = async () => {
    removeHook();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`etcd exited during start:\n${logTail()}`);
    }
    const healthy = await fetch(`${clientUrl}/health`)
      .then(async (r) => r.ok && ((await r.json()) as { health?: string }).health === 'true')
      .catch(() => false);
    if (healthy) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`etcd not healthy within 30 s:\n${logTail()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { clientUrl, hostPort: `127.0.0.1:${clientPort}`, pid, logTail, stop };
}
