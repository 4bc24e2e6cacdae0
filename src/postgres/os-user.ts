import { execFileSync } from 'node:child_process';
import { lchown, readdir } from 'node:fs/promises';
import path from 'node:path';
import { WardenError } from '../errors.ts';

/** The OS identity a local PostgreSQL process runs as. */
export interface RunAs {
  readonly user: string;
  readonly uid: number;
  readonly gid: number;
}

/**
 * PostgreSQL refuses to run as root. When Warden runs as root it starts servers as an
 * unprivileged user (`WARDEN_RUN_AS`, default `postgres`); otherwise as the current user.
 */
export function serverRunAs(env: NodeJS.ProcessEnv = process.env): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const user = env.WARDEN_RUN_AS ?? 'postgres';
  try {
    const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
    return { user, uid, gid };
  } catch (cause) {
    throw new WardenError(
      'WARDEN_E_INSTANCE_START_FAILED',
      `running as root, but OS user "${user}" does not exist`,
      {
        hint: 'PostgreSQL cannot run as root. Create the user (useradd --system postgres) or set WARDEN_RUN_AS.',
        cause,
      },
    );
  }
}

/**
 * Gives a directory tree to the server's OS user (no-op when not root). Never follows a
 * symlink: a restored tree comes from a repository, and chown on a link (a tablespace's
 * `pg_tblspc/<oid>`) would hand whatever it points to to that user. lchown changes the link
 * itself, and a link is not descended into (its Dirent is not a directory).
 */
export async function chownTree(dir: string, runAs: RunAs | undefined): Promise<void> {
  if (!runAs) return;
  await lchown(dir, runAs.uid, runAs.gid);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(full, runAs);
    else await lchown(full, runAs.uid, runAs.gid);
  }
}
