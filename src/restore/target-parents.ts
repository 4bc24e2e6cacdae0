import { chmod, mkdir, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { WardenError } from '../errors.ts';
import type { RunAs } from '../postgres/os-user.ts';

/**
 * The directories above a restore target. When Warden runs as root, the restored server runs as
 * another OS user (os-user.ts) that must pass through every one of them to reach its data
 * directory. Missing ones are created so it can (0711: enter, not list — like /home); an
 * existing one it cannot enter is refused before anything is written, naming it and the fix,
 * since changing the mode of a directory Warden did not make is not Warden's call.
 *
 * The check reads mode bits the way the kernel applies them to the server: by its uid and its
 * primary gid only (servers are started with setuid/setgid and no supplementary groups). ACLs
 * are not read; a directory an ACL opens would be refused with a fix that also works.
 */
export async function missingParents(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (let parent = path.dirname(dir); ; parent = path.dirname(parent)) {
    if (await exists(parent)) break;
    missing.unshift(parent);
    if (path.dirname(parent) === parent) break;
  }
  return missing;
}

/** Refuses a target whose existing ancestors the server's OS user cannot pass through. */
export async function checkServerCanReach(dir: string, runAs: RunAs | undefined): Promise<void> {
  if (!runAs) return;
  for (let parent = path.dirname(dir); ; parent = path.dirname(parent)) {
    const info = await stat(parent).catch(() => undefined);
    if (info && !canEnter(info, runAs)) {
      throw new WardenError(
        'WARDEN_E_TARGET_UNREACHABLE',
        `restore target ${dir}: PostgreSQL runs as "${runAs.user}", which cannot enter ${parent} (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}, owner uid ${info.uid})`,
        {
          hint: `Restore under a directory "${runAs.user}" can enter (e.g. /var/lib/postgresql/restored), or let it pass through: chmod o+x ${quote(parent)}. Nothing was written.`,
          details: { targetDir: dir, blockedAt: parent, serverUser: runAs.user },
        },
      );
    }
    if (path.dirname(parent) === parent) return;
  }
}

/** Creates `parents` (outermost first) so the server's OS user can pass through them. */
export async function createParents(parents: readonly string[], runAs: RunAs | undefined): Promise<void> {
  const mode = runAs ? 0o711 : 0o700;
  for (const parent of parents) {
    await mkdir(parent, { mode });
    // The umask applies to mkdir's mode; the mode must be exactly this.
    await chmod(parent, mode);
  }
}

/** Removes the parents a restore created (innermost first), each only if empty. */
export async function removeParents(parents: readonly string[]): Promise<void> {
  for (const parent of [...parents].reverse()) await rmdir(parent).catch(() => undefined);
}

function canEnter(info: { mode: number; uid: number; gid: number }, runAs: RunAs): boolean {
  if (info.uid === runAs.uid) return (info.mode & 0o100) !== 0;
  if (info.gid === runAs.gid) return (info.mode & 0o010) !== 0;
  return (info.mode & 0o001) !== 0;
}

function quote(file: string): string {
  return /^[\w./-]+$/.test(file) ? file : `'${file.replaceAll("'", "'\\''")}'`;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
