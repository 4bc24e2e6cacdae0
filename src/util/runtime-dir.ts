import { chmod, lstat, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { WardenError } from '../errors.ts';

/**
 * This OS user's directory for machine-wide owner records (which Warden serves which HTTP
 * port): `$TMPDIR/warden-<uid>`, mode 0700. A record found there decides whether a second run
 * refuses to start, so the directory must be this user's own: one that is a link, or that
 * another user made first, is refused rather than trusted.
 */
export async function runtimeDir(): Promise<string> {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const dir = path.join(os.tmpdir(), `warden-${uid}`);
  await mkdir(dir, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
  const stat = await lstat(dir);
  if (!stat.isDirectory() || stat.uid !== uid) {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${dir} is not a directory of this user`, {
      hint: `Remove it (another user or a link holds the name), or point TMPDIR elsewhere.`,
      details: { dir },
    });
  }
  if ((stat.mode & 0o077) !== 0) await chmod(dir, 0o700);
  return dir;
}
