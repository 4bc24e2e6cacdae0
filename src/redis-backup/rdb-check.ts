import { execFile } from 'node:child_process';

export type RdbCheck = { ok: true } | { ok: false; output: string } | { ok: 'unavailable'; reason: string };

/**
 * Runs `redis-check-rdb` (WARDEN_REDIS_CHECK_RDB, else the one on PATH; it comes with
 * redis-server) on a file: exit 0 means Redis could load it — every opcode, encoding and the
 * trailing CRC64 check out.
 */
export function checkRdbFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<RdbCheck> {
  const tool = env.WARDEN_REDIS_CHECK_RDB || 'redis-check-rdb';
  return new Promise((resolve) => {
    execFile(tool, [file], { timeout: 600_000, maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) return resolve({ ok: true });
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        return resolve({ ok: 'unavailable', reason: `${tool} is not installed` });
      const tail = `${stdout}\n${stderr}`.trim().split('\n').slice(-12).join('\n');
      resolve({ ok: false, output: tail });
    });
  });
}
