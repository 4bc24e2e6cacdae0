import type pg from 'pg';
import { WardenError } from '../errors.ts';
import { sleep } from '../util/backoff.ts';

/**
 * The session advisory lock key every `warden migrate` of a cluster takes: "wardenmi" in ASCII,
 * a fixed 63-bit number, so any two deploys of any version agree on it.
 */
export const MIGRATION_LOCK_KEY = '8602282538778389865';
const POLL_MS = 500;

/**
 * Takes the migration lock on `client`'s session, waiting for another deploy's migration to end,
 * at most `timeoutMs` (then WARDEN_E_MIGRATION_LOCKED naming the holder). Held until the session
 * ends: a killed `warden migrate` frees it with its connection. A session lock needs a real
 * session: through PgBouncer in transaction mode, connect to the server directly instead.
 */
export async function takeMigrationLock(
  client: pg.Client,
  options: { timeoutMs: number; signal?: AbortSignal; onWaiting?: (holder: string) => void },
): Promise<{ waitedMs: number }> {
  const started = Date.now();
  let told = false;
  for (;;) {
    const { rows } = await client.query<{ locked: boolean }>(
      'SELECT pg_try_advisory_lock($1::bigint) AS locked',
      [MIGRATION_LOCK_KEY],
    );
    if (rows[0]?.locked) return { waitedMs: Date.now() - started };
    const holder = await describeHolder(client);
    if (!told) {
      options.onWaiting?.(holder);
      told = true;
    }
    if (Date.now() - started >= options.timeoutMs) {
      throw new WardenError(
        'WARDEN_E_MIGRATION_LOCKED',
        `another migration holds the lock (${holder}) and did not finish within ${Math.round(options.timeoutMs / 1000)} s`,
        {
          hint: "Wait for the other deploy, or raise --lock-timeout; `SELECT * FROM pg_locks WHERE locktype = 'advisory'` shows the holder.",
          details: { holder },
        },
      );
    }
    await sleep(POLL_MS, options.signal);
  }
}

/** Who holds the lock, from pg_locks and pg_stat_activity (as far as this role may see). */
async function describeHolder(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{
    pid: number;
    application_name: string | null;
    client_addr: string | null;
  }>(
    `SELECT l.pid, a.application_name, a.client_addr::text AS client_addr
       FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted
        AND ((l.classid::bigint << 32) | l.objid::bigint) = $1::bigint`,
    [MIGRATION_LOCK_KEY],
  );
  const row = rows[0];
  if (!row) return 'a session that just ended';
  return `backend pid ${row.pid}${row.application_name ? `, ${row.application_name}` : ''}${row.client_addr ? ` from ${row.client_addr}` : ''}`;
}
