import { constants } from 'node:fs';
import { lstat, mkdir, open, readFile, symlink, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { WardenError } from '../errors.ts';

/**
 * Why an archive entry was refused: `details.problem` of the WARDEN_E_REPO_CORRUPT error.
 * Stable strings, documented in docs/restore.md ("Hostile archives").
 */
export type EntryProblem =
  | 'absolute-path'
  | 'parent-component'
  | 'empty-name'
  | 'symlink-in-path'
  | 'not-a-directory'
  | 'not-a-file'
  | 'is-a-symlink'
  | 'duplicate-entry'
  | 'hard-link'
  | 'device-file'
  | 'fifo'
  | 'unsupported-type'
  | 'symlink-not-tablespace'
  | 'tablespace-unknown'
  | 'tablespace-link-relative'
  | 'tablespace-link-inside-target'
  | 'tablespace-oid-invalid';

/** A refused archive entry: the repository holds something PostgreSQL never writes. */
export function refuseEntry(
  object: string,
  entry: string,
  problem: EntryProblem,
  reason: string,
): WardenError {
  return new WardenError('WARDEN_E_REPO_CORRUPT', `${object}: entry "${entry}" refused: ${reason}`, {
    hint: 'PostgreSQL never writes such an entry: the repository was damaged or tampered with. Restore from another backup or repository copy.',
    details: { object, entry, problem },
  });
}

const { O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_NOFOLLOW } = constants;

/**
 * How a file is opened: `new` only creates (a name seen twice is refused), `replace` creates or
 * truncates, `existing` opens what is there for update. Never through a symlink (O_NOFOLLOW:
 * the last component; `ensureDir` checks the others).
 */
const OPEN_FLAGS = {
  new: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW,
  replace: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW,
  existing: O_RDWR | O_NOFOLLOW,
} as const;

/**
 * A directory written by names read from a repository (tar entries), that no name can leave:
 * names are checked as text (no absolute paths, no `..`), every component of a path is checked
 * with lstat to be a real directory (a symlink is refused, never followed), files are opened with
 * O_NOFOLLOW, and symlinks are only created by `createLinks`, after everything else is written.
 *
 * Directories already checked or made by this instance are remembered, so a file costs one Set
 * lookup for its parent, not an lstat per component. That is sound because nothing else writes
 * into the directory meanwhile and this instance creates no symlink before `createLinks`.
 */
export class ConfinedDir {
  /** Relative paths ('' = the root) known to be real directories. */
  private readonly dirs = new Set<string>(['']);
  /** Symlinks to create at the end, by relative path: no entry may pass through or replace one. */
  private readonly links = new Map<string, { linkname: string; entry: string }>();

  /**
   * @param heldBack files written under another name (relative path → relative path in the same
   *   directory): a restore holds PG_VERSION and global/pg_control back until it completed.
   */
  constructor(
    readonly root: string,
    private readonly object: string,
    private readonly heldBack: ReadonlyMap<string, string> = new Map(),
  ) {}

  /** The components of an entry's name; refuses absolute names and `..` (`.` and `//` are dropped). */
  parse(name: string): string[] {
    if (name.startsWith('/')) throw this.refuse(name, 'absolute-path', 'an absolute path');
    const parts = name.split('/').filter((part) => part !== '' && part !== '.');
    if (parts.includes('..')) throw this.refuse(name, 'parent-component', 'a ".." component');
    return parts;
  }

  /** The absolute path of `parts` (inside the root by construction: `parse` made them). */
  pathOf(parts: readonly string[]): string {
    return parts.length ? path.join(this.root, ...parts) : this.root;
  }

  /**
   * Makes sure each component of `parts` is a real directory, creating the missing ones (0700);
   * refuses a symlink, a non-directory, or a path that a pending symlink would sit in.
   */
  async ensureDir(parts: readonly string[], entry: string): Promise<string> {
    const full = parts.join('/');
    if (this.dirs.has(full)) return this.pathOf(parts);
    for (let i = 1; i <= parts.length; i += 1) {
      const rel = parts.slice(0, i).join('/');
      if (this.dirs.has(rel)) continue;
      if (this.links.has(rel))
        throw this.refuse(entry, 'symlink-in-path', `"${rel}" is a symbolic link in the archive`);
      const dir = path.join(this.root, rel);
      const info = await lstat(dir).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      });
      if (!info) await mkdir(dir, { mode: 0o700 });
      else if (info.isSymbolicLink())
        throw this.refuse(entry, 'symlink-in-path', `"${rel}" is a symbolic link`);
      else if (!info.isDirectory())
        throw this.refuse(entry, 'not-a-directory', `"${rel}" is not a directory`);
      this.dirs.add(rel);
    }
    return this.pathOf(parts);
  }

  /** Checks the parents of a file or link entry (made if missing) and returns its path. */
  async prepareFile(parts: readonly string[], entry: string): Promise<string> {
    if (parts.length === 0) throw this.refuse(entry, 'empty-name', 'a name with no file in it');
    const rel = parts.join('/');
    if (this.links.has(rel) || this.dirs.has(rel))
      throw this.refuse(entry, 'duplicate-entry', `"${rel}" is already in the archive`);
    await this.ensureDir(parts.slice(0, -1), entry);
    const held = this.heldBack.get(rel);
    return held === undefined ? this.pathOf(parts) : path.join(this.root, held);
  }

  /** Opens a file prepared by `prepareFile`; see OPEN_FLAGS. */
  async open(file: string, entry: string, how: keyof typeof OPEN_FLAGS, mode = 0o600): Promise<FileHandle> {
    try {
      return await open(file, OPEN_FLAGS[how], mode);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // ELOOP: the last component is a symlink (O_NOFOLLOW). EEXIST: `new` met a name twice.
      if (code === 'ELOOP') throw this.refuse(entry, 'is-a-symlink', 'the file is a symbolic link');
      if (code === 'EEXIST')
        throw this.refuse(entry, 'duplicate-entry', 'the name is already in the archive');
      if (code === 'EISDIR') throw this.refuse(entry, 'not-a-file', 'the name is a directory');
      throw error;
    }
  }

  /** Records a symlink for `createLinks`; its parents are checked (and made) now. */
  async deferLink(parts: readonly string[], entry: string, linkname: string): Promise<string> {
    const file = await this.prepareFile(parts, entry);
    this.links.set(parts.join('/'), { linkname, entry });
    return file;
  }

  /**
   * Creates the recorded symlinks, once every other entry is written. `replace` lets a link
   * replace a symlink already there (an incremental backup naming its tablespaces again); a
   * file or directory in its place is refused either way.
   */
  async createLinks(replace = false): Promise<void> {
    for (const [rel, { linkname, entry }] of this.links) {
      const file = path.join(this.root, rel);
      if (replace) {
        const info = await lstat(file).catch(() => undefined);
        if (info?.isSymbolicLink()) await unlink(file);
      }
      try {
        await symlink(linkname, file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST')
          throw this.refuse(entry, 'duplicate-entry', `"${rel}" is already in the archive`);
        throw error;
      }
    }
    this.links.clear();
  }

  refuse(entry: string, problem: EntryProblem, reason: string): WardenError {
    return refuseEntry(this.object, entry, problem, reason);
  }
}

/**
 * Writes a file Warden names itself (backup_label, postgresql.auto.conf, a WAL segment) into a
 * restored directory: never through a symlink, whatever an archive left there.
 */
export async function writeNoFollow(file: string, data: string | Buffer): Promise<void> {
  await writeFile(file, data, { flag: OPEN_FLAGS.replace, mode: 0o600 });
}

/** Reads a restored file (backup_label), never through a symlink. */
export async function readNoFollow(file: string): Promise<string> {
  return readFile(file, { encoding: 'utf8', flag: constants.O_RDONLY | O_NOFOLLOW });
}

/** Opens a file Warden names itself for writing (created or truncated), never through a symlink. */
export function openNoFollow(file: string): Promise<FileHandle> {
  return open(file, OPEN_FLAGS.replace, 0o600);
}
