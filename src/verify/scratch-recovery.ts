import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { WardenError } from '../errors.ts';
import { readHeartbeat } from '../postgres/heartbeat.ts';
import type { LocalInstance } from '../postgres/local-instance.ts';
import { waitForPromotion } from '../restore/recovery-wait.ts';
import { sleep } from '../util/backoff.ts';
import { withScratch } from './scratch-checks.ts';

/**
 * Starts the restored instance and waits until recovery reached the target and it serves as a
 * primary. The newest heartbeat goes to `onHeartbeat` before the target is compared, so a
 * report shows it even when recovery went too far. Returns the check's detail.
 */
export async function awaitRecoveredScratch(
  instance: LocalInstance,
  source: ConnectionConfig,
  port: number,
  /** ISO time of a time target: a heartbeat after it means recovery overshot. */
  targetTime: string | undefined,
  onHeartbeat: (beat: Date | undefined) => void,
): Promise<string> {
  await instance.start({ timeoutSeconds: 3600 });
  await waitForPromotion(instance);
  return withScratch(source, port, undefined, async (client) => {
    // recovery.signal goes a moment before the end-of-recovery checkpoint finishes promotion.
    const deadline = Date.now() + 120_000;
    let inRecovery = true;
    while (inRecovery && Date.now() < deadline) {
      const { rows } = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      inRecovery = rows[0]?.r !== false;
      if (inRecovery) await sleep(100);
    }
    if (inRecovery)
      throw new WardenError('WARDEN_E_RECOVERY_FAILED', 'the restored instance is still in recovery');
    const beat = await readHeartbeat(client);
    onHeartbeat(beat);
    if (beat && targetTime !== undefined && beat.getTime() > Date.parse(targetTime)) {
      throw new WardenError(
        'WARDEN_E_RECOVERY_FAILED',
        `recovery went past the target: heartbeat ${beat.toISOString()} is after ${targetTime}`,
      );
    }
    return `promoted${beat ? `, newest heartbeat ${beat.toISOString()}` : ''}`;
  });
}
