import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { WardenError } from '../errors.ts';
import type { LocalInstance } from '../postgres/local-instance.ts';
import { sleep } from '../util/backoff.ts';

/**
 * Waits until a restored instance has finished recovery and been promoted. PostgreSQL removes
 * recovery.signal when archive recovery ends and writes "ready" as the postmaster status in
 * postmaster.pid (line 8) once it accepts read-write connections, so no login is needed.
 * A postmaster that exits meanwhile failed recovery: its log tail goes into the error.
 */
export async function waitForPromotion(instance: LocalInstance, timeoutMs = 3_600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pidFile = path.join(instance.dataDir, 'postmaster.pid');
  while (Date.now() < deadline) {
    if (!existsSync(pidFile)) {
      throw new WardenError(
        'WARDEN_E_RECOVERY_FAILED',
        `the restored instance in ${instance.dataDir} stopped during recovery`,
        {
          hint: `See ${instance.logFile}.`,
          details: { log: await instance.logTail() },
        },
      );
    }
    const status = (await readFile(pidFile, 'utf8').catch(() => '')).split('\n')[7]?.trim();
    if (status === 'ready' && !existsSync(path.join(instance.dataDir, 'recovery.signal'))) return;
    await sleep(50);
  }
  throw new WardenError(
    'WARDEN_E_RECOVERY_FAILED',
    `recovery in ${instance.dataDir} did not finish in time`,
    {
      details: { log: await instance.logTail() },
    },
  );
}
