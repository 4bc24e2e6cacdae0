import { realpath } from 'node:fs/promises';
import path from 'node:path';
import type { ConfinedDir } from './confined-dir.ts';

/** Entry types PostgreSQL never writes into a backup archive, each refused with its problem. */
export type SpecialEntry = 'hard-link' | 'device-file' | 'fifo' | 'unsupported-type';

const SPECIAL_REASONS: Record<SpecialEntry, string> = {
  'hard-link': 'a hard link',
  'device-file': 'a device file',
  fifo: 'a FIFO',
  'unsupported-type': 'an entry type PostgreSQL does not write',
};

export function refuseSpecial(dir: ConfinedDir, entry: string, kind: SpecialEntry): Error {
  return dir.refuse(entry, kind, `${SPECIAL_REASONS[kind]} (PostgreSQL writes none)`);
}

/**
 * The one place a backup archive may hold a symlink: `pg_tblspc/<oid>` of the main data
 * directory's archive, for a tablespace the backup holds (`tablespaces`: their OIDs; absent for
 * a tablespace's own archive, where no link is allowed), pointing to an absolute location
 * outside the target (CREATE TABLESPACE takes absolute paths only; a link into the target would
 * let PostgreSQL write one part of the data directory through another).
 */
export async function checkTablespaceLink(
  dir: ConfinedDir,
  parts: readonly string[],
  entry: string,
  linkname: string,
  tablespaces: ReadonlySet<string> | undefined,
): Promise<void> {
  const oid = parts.length === 2 && parts[0] === 'pg_tblspc' ? parts[1]! : undefined;
  if (!tablespaces || oid === undefined || !/^\d+$/.test(oid))
    throw dir.refuse(entry, 'symlink-not-tablespace', 'a symbolic link other than pg_tblspc/<oid>');
  if (!tablespaces.has(oid))
    throw dir.refuse(entry, 'tablespace-unknown', `tablespace ${oid} is not one of the backup's tablespaces`);
  if (!path.isAbsolute(linkname))
    throw dir.refuse(entry, 'tablespace-link-relative', `the link points to a relative path (${linkname})`);
  const to = path.resolve(linkname);
  for (const root of new Set([dir.root, await realpath(dir.root)])) {
    if (to === root || to.startsWith(root + path.sep))
      throw dir.refuse(
        entry,
        'tablespace-link-inside-target',
        `the link points inside the target (${linkname})`,
      );
  }
}
