import { fail, ok, warn, type CheckResult } from './check-result.ts';
import type { ServerSnapshot } from './server-snapshot.ts';

const NAME = 'clock';
/**
 * Backup and commit times come from the server's clock; `status` (RPO exposure, the stream's
 * caught-up point) and the daemon's schedules compare them with this host's. Past 1 s a skew
 * shows in those numbers (the window's end promises to trail the durable point by at most about
 * a second); past 30 s it misleads (a "recent" restore target is refused or lands elsewhere).
 */
export const CLOCK_WARN_MS = 1_000;
export const CLOCK_FAIL_MS = 30_000;

/**
 * How far the server's clock is from this host's: the server's clock_timestamp() against the
 * midpoint of the local clock before and after asking. Only the part beyond half the round trip
 * (the measurement's uncertainty) counts.
 */
export function checkClock(clock: ServerSnapshot['clock']): CheckResult {
  const midpoint = (clock.localBefore + clock.localAfter) / 2;
  const skewMs = Math.round(clock.server.getTime() - midpoint);
  const uncertaintyMs = Math.ceil((clock.localAfter - clock.localBefore) / 2);
  const certainMs = Math.max(0, Math.abs(skewMs) - uncertaintyMs);
  const direction = skewMs > 0 ? 'ahead of' : 'behind';
  const text = `server clock ${Math.abs(skewMs)} ms ${direction} this host's (±${uncertaintyMs} ms)`;
  const details = { skewMs, uncertaintyMs, warnMs: CLOCK_WARN_MS, failMs: CLOCK_FAIL_MS };
  const fix = 'Run NTP (chrony, systemd-timesyncd) on both hosts.';
  if (certainMs > CLOCK_FAIL_MS)
    return fail(NAME, 'WARDEN_E_CLOCK_SKEW', `${text}: more than ${CLOCK_FAIL_MS / 1000} s`, {
      fix,
      details,
    });
  if (certainMs > CLOCK_WARN_MS)
    return warn(
      NAME,
      `${text}: more than ${CLOCK_WARN_MS / 1000} s; RPO exposure and recent restore targets are off by as much`,
      { fix, details },
    );
  return ok(NAME, text, details);
}
