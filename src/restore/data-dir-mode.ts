import { chmod, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * PostgreSQL starts only on a data directory of mode 0700, or 0750 when the cluster allows group
 * read access (initdb --allow-group-access), whose files it then keeps at 0640. A base backup's
 * tar headers carry each file's mode, so PG_VERSION tells which the source cluster had; the
 * restored directory gets the same, whatever mode (or umask) it was created with. A restore in
 * progress names the file it holds PG_VERSION back as (`versionFile`).
 */
export async function setDataDirectoryMode(
  targetDir: string,
  versionFile = path.join(targetDir, 'PG_VERSION'),
): Promise<number> {
  // Without PG_VERSION (not a data directory PostgreSQL would start anyway): owner only.
  const version = await stat(versionFile).catch(() => undefined);
  const mode = version && (version.mode & 0o040) !== 0 ? 0o750 : 0o700;
  await chmod(targetDir, mode);
  return mode;
}
