import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { onExit } from './cleanup.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A server process a test started on a loopback port (an exporter, Prometheus, Alertmanager). */
export interface LoopbackProcess {
  readonly name: string;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** stdout and stderr so far, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Spawns `command` and waits until `http://127.0.0.1:<port><readyPath>` answers 200. The process
 * is killed when the test process exits, whatever happened to the test.
 */
export async function startLoopbackProcess(options: {
  name: string;
  command: string;
  args: string[];
  port: number;
  readyPath: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}): Promise<LoopbackProcess> {
  const child: ChildProcess = spawn(options.command, options.args, {
    env: { ...process.env, ...options.env },
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)));
  child.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)));
  child.on('error', (error) => (output += `\nspawn failed: ${error.message}`));
  const removeHook = onExit(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const url = `http://127.0.0.1:${options.port}`;
  const stop = async () => {
    removeHook();
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      removeHook();
      throw new Error(`${options.name} exited before it answered:\n${output}`);
    }
    try {
      const response = await fetch(`${url}${options.readyPath}`, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${options.name} did not answer ${options.readyPath} on ${url}:\n${output}`);
    }
    await sleep(100);
  }
  return { name: options.name, port: options.port, url, output: () => output, stop };
}
