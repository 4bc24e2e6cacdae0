import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { WardenError } from '../errors.ts';
import { renderSettings } from '../postgres/local-instance.ts';
import { readNoFollow, writeNoFollow } from './confined-dir.ts';

/** What makes a restored data directory a standby (`warden restore --standby`). */
export interface StandbySettings {
  /**
   * `primary_conninfo` (libpq key/value or URL). Never with a password: it would sit in
   * postgresql.auto.conf, readable in every backup of this standby. The password comes from
   * the server user's ~/.pgpass or a `passfile=` named here. Absent: the standby recovers from
   * the repository only (Patroni writes its own primary_conninfo).
   */
  primaryConninfo?: string;
  /** `primary_slot_name`: the slot on the primary that keeps this standby's WAL. */
  slot?: string;
  /** `restore_command`: `warden wal get %f %p` with this repository's options. */
  restoreCommand: string;
}

/**
 * Refuses a conninfo carrying a password, in either form libpq accepts: `password=` among
 * key/value pairs, or a URL's `user:password@` or `?password=`.
 */
export function assertNoPassword(conninfo: string): void {
  const keyValue = /(^|\s)password\s*=/i.test(conninfo);
  let inUrl = false;
  if (/^postgres(ql)?:\/\//i.test(conninfo)) {
    try {
      const url = new URL(conninfo);
      inUrl = url.password !== '' || url.searchParams.has('password');
    } catch {
      inUrl = /:\/\/[^/@]*:[^/@]*@/.test(conninfo);
    }
  }
  if (keyValue || inUrl)
    throw new WardenError('WARDEN_E_USAGE', '--primary-conninfo must not contain a password', {
      hint: "It would be written to postgresql.auto.conf. Put the password in the server user's ~/.pgpass, or name a file with passfile=/path in the conninfo.",
    });
}

/** The replication slot name rules of PostgreSQL: lower-case letters, digits, underscores. */
function assertSlotName(slot: string): void {
  if (!/^[a-z0-9_]{1,63}$/.test(slot))
    throw new WardenError('WARDEN_E_USAGE', `--slot ${slot}: not a replication slot name`, {
      hint: 'Use lower-case letters, digits and underscores, at most 63 characters.',
    });
}

/**
 * standby.signal, and the standby's settings appended to postgresql.auto.conf: restore_command,
 * primary_conninfo and primary_slot_name (each only when given), recovery up to the newest
 * timeline. Unlike a recovered copy, nothing keeps it away from its primary: following it is
 * the point. The server's own settings (listen addresses, hba) stay as the backup had them.
 */
export async function writeStandbyConfig(
  targetDir: string,
  standby: StandbySettings,
  port: number | undefined,
  origin: string,
): Promise<void> {
  if (standby.primaryConninfo !== undefined) assertNoPassword(standby.primaryConninfo);
  if (standby.slot !== undefined) assertSlotName(standby.slot);
  for (const file of ['recovery.signal', 'postmaster.pid', 'postmaster.opts'])
    await rm(path.join(targetDir, file), { force: true });
  await writeNoFollow(path.join(targetDir, 'standby.signal'), '');
  if (!existsSync(path.join(targetDir, 'postgresql.conf')))
    await writeNoFollow(path.join(targetDir, 'postgresql.conf'), '# written by warden restore --standby\n');
  const settings: Record<string, string | number> = {
    restore_command: standby.restoreCommand,
    recovery_target_timeline: 'latest',
    ...(standby.primaryConninfo !== undefined ? { primary_conninfo: standby.primaryConninfo } : {}),
    ...(standby.slot !== undefined ? { primary_slot_name: standby.slot } : {}),
    ...(port !== undefined ? { port } : {}),
  };
  const autoConf = path.join(targetDir, 'postgresql.auto.conf');
  const existing = await readNoFollow(autoConf).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  await writeNoFollow(
    autoConf,
    `${existing}\n# warden restore --standby of ${origin}\n${renderSettings(settings)}`,
  );
}
