import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { WardenError } from '../errors.ts';
import { freePort } from '../util/free-port.ts';
import { endpointOf } from './redis-endpoint.ts';
import { RespConnection } from './resp-connection.ts';
import { RespError } from './resp-reply.ts';

/** A private redis-server on a loopback port, serving an RDB file; stopped by its PID. */
export interface TempRedisServer {
  readonly port: number;
  connect(): Promise<RespConnection>;
  stop(): Promise<void>;
}

/**
 * Starts `redis-server` (WARDEN_REDIS_SERVER, else the one on PATH) on a free loopback port over
 * `dir/dump.rdb`, with persistence off so it never writes back, and waits until it has loaded
 * the snapshot (`LOADING` answers mean not yet), up to `timeoutMs`.
 */
export async function startTempRedisServer(
  dir: string,
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<TempRedisServer> {
  const env = options.env ?? process.env;
  const binary = env.WARDEN_REDIS_SERVER || 'redis-server';
  const port = await freePort();
  const child: ChildProcess = spawn(
    binary,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--protected-mode',
      'yes',
      '--dir',
      dir,
      '--dbfilename',
      'dump.rdb',
      '--save',
      '',
      '--appendonly',
      'no',
      '--loglevel',
      'warning',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-4000)));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const exited = once(child, 'exit');
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited.catch(() => undefined);
    }
  };
  const endpoint = endpointOf({ host: '127.0.0.1', port, tls: false });
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  try {
    for (;;) {
      const failed = await Promise.race([spawnError, new Promise<undefined>((r) => setTimeout(r, 50))]);
      if (failed) {
        throw new WardenError('WARDEN_E_TOOL_MISSING', `cannot run ${binary}: ${failed.message}`, {
          hint: 'Install redis-server (it brings redis-check-rdb), or set WARDEN_REDIS_SERVER to its path.',
          details: { tool: binary },
        });
      }
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new WardenError(
          'WARDEN_E_RDB_INVALID',
          `redis-server could not load the snapshot (exit ${child.exitCode ?? child.signalCode})`,
          {
            details: { log: stderr.trim().split('\n').slice(-10) },
          },
        );
      }
      if (await answersPing(endpoint)) break;
      if (Date.now() > deadline)
        throw new WardenError(
          'WARDEN_E_INSTANCE_START_FAILED',
          `redis-server on port ${port} did not load its snapshot in time`,
          { details: { log: stderr.slice(-2000) } },
        );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    port,
    connect: () => RespConnection.open(endpoint),
    stop,
  };
}

async function answersPing(endpoint: ReturnType<typeof endpointOf>): Promise<boolean> {
  let connection: RespConnection | undefined;
  try {
    connection = await RespConnection.open(endpoint, { connectTimeoutMs: 1000 });
    const reply = await connection.raw(['PING']);
    return !(reply instanceof RespError);
  } catch {
    return false;
  } finally {
    connection?.close();
  }
}
