import { chmod, chown, lstat, mkdir, readdir, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { RepositoryGroup } from './repository-group.ts';

/** A repository entry that lets in more users than the repository's policy does. */
export interface LooseEntry {
  /** The entry's path in the repository (`.` for the root directory). */
  key: string;
  kind: 'file' | 'directory';
  /** Its permission bits, in octal (`0644`). */
  mode: string;
  gid: number;
}

/** What `verify` reports about the modes of a filesystem repository. */
export interface ModeAudit {
  /** The policy: `owner only`, or `owner and group <name>`. */
  policy: string;
  checked: number;
  /** How many entries are looser than the policy. */
  looseCount: number;
  /** The first of them (at most 20). */
  loose: LooseEntry[];
  /** A command that brings the repository to the policy. */
  fix?: string;
}

const MAX_LISTED = 20;

/**
 * Who may read a filesystem repository: the OS user running Warden only (directories 0700,
 * files 0600), or also one group (0750, 0640, owned by that group) when another local user must
 * read it (PostgreSQL's own user running a restore_command). Set explicitly on everything the
 * store creates, so the umask plays no part.
 */
export class FsAccess {
  /** Files are created owner-only, then given the policy by `applyTo` before any byte is written. */
  readonly createMode = 0o600;
  readonly dirMode: number;
  readonly fileMode: number;

  constructor(readonly group?: RepositoryGroup) {
    this.dirMode = group ? 0o750 : 0o700;
    this.fileMode = group ? 0o640 : 0o600;
  }

  /**
   * Creates `dir` and its missing parents, each given the policy. Existing directories are left
   * as they are (`verify` reports those looser than the policy).
   */
  async ensureDir(dir: string): Promise<void> {
    // Created owner-only first (0700 less whatever the umask removes), then given to the group:
    // never a moment where a new directory is open to more users than it will be.
    const first = await mkdir(dir, { recursive: true, mode: 0o700 });
    if (first === undefined) return;
    const created: string[] = [];
    for (let current = dir; ; current = path.dirname(current)) {
      created.unshift(current);
      if (current === first || path.dirname(current) === current) break;
    }
    for (const each of created) {
      if (this.group) await chown(each, -1, this.group.gid);
      await chmod(each, this.dirMode);
    }
  }

  /**
   * Gives a file the store opened for writing the policy's group and mode, through its handle
   * (fchown, fchmod: no umask, no race with a rename). Call before writing any data to it.
   */
  async applyTo(handle: FileHandle): Promise<void> {
    if (this.group) await handle.chown(-1, this.group.gid);
    await handle.chmod(this.fileMode);
  }

  /** Every entry under `root` (and `root` itself) whose mode or group is looser than the policy. */
  async audit(root: string): Promise<ModeAudit> {
    const group = this.group;
    const audit: ModeAudit = {
      policy: group ? `owner and group ${group.name}` : 'owner only',
      checked: 0,
      looseCount: 0,
      loose: [],
    };
    const check = async (full: string): Promise<boolean> => {
      let info;
      try {
        info = await lstat(full);
      } catch (error) {
        // Deleted while we walked (expire, a finished temp file): nothing to judge.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw error;
      }
      if (!info.isDirectory() && !info.isFile()) return false;
      audit.checked += 1;
      const directory = info.isDirectory();
      const groupAllowed = group ? (directory ? 0o050 : 0o040) : 0;
      const mode = info.mode & 0o777;
      const loose =
        (mode & 0o007) !== 0 ||
        (mode & 0o070 & ~groupAllowed) !== 0 ||
        (group !== undefined && (mode & 0o070) !== 0 && info.gid !== group.gid);
      if (loose) {
        audit.looseCount += 1;
        if (audit.loose.length < MAX_LISTED) {
          audit.loose.push({
            key: path.relative(root, full).split(path.sep).join('/') || '.',
            kind: directory ? 'directory' : 'file',
            mode: `0${mode.toString(8).padStart(3, '0')}`,
            gid: info.gid,
          });
        }
      }
      return directory;
    };
    const walk = async (dir: string): Promise<void> => {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw error;
      }
      for (const name of names.sort()) {
        const full = path.join(dir, name);
        if (await check(full)) await walk(full);
      }
    };
    if (await check(root)) await walk(root);
    if (audit.looseCount > 0) {
      const quoted = `'${root.replaceAll("'", "'\\''")}'`;
      audit.fix = group
        ? `chgrp -R ${group.name} ${quoted} && chmod -R u=rwX,g=rX,o= ${quoted}`
        : `chmod -R go= ${quoted}`;
    }
    return audit;
  }
}
