import { constants } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { WardenError } from '../errors.ts';
import type { RunAs } from '../postgres/os-user.ts';
import { fsyncPath } from '../util/sync-tree.ts';
import { checkServerCanReach, createParents, missingParents, removeParents } from './target-parents.ts';

/**
 * The file that says a directory is a restore that has not completed: written before anything
 * else, removed after everything else. Warden recognises a leftover by it (and can remove one);
 * PostgreSQL ignores it, so it is not what stops the server: see HELD_BACK.
 */
export const INCOMPLETE_MARKER = 'warden-restore-incomplete.json';

/**
 * Files of the main archive written under another name until the restore completed: PostgreSQL
 * refuses a directory without PG_VERSION ("is not a valid data directory") and cannot start
 * without global/pg_control, so a half-restored directory — killed, cut off by a power loss, in
 * any phase — never starts on old data. Put in place in this order, PG_VERSION last.
 */
export const HELD_BACK: ReadonlyMap<string, string> = new Map([
  ['global/pg_control', 'global/pg_control.warden-incomplete'],
  ['PG_VERSION', 'PG_VERSION.warden-incomplete'],
]);

/** How the directory was before the restore touched it, so a failure can return it so. */
interface FoundState {
  existed: boolean;
  /** Of a directory that existed (empty): the restore chmods and chowns it. */
  mode?: number;
  uid?: number;
  gid?: number;
  /** `DIR_tablespaces` existed: it is left in place (only what the restore made goes). */
  tablespacesExisted: boolean;
  /** Directories above the target the restore created, outermost first (removed on failure). */
  createdParents?: string[];
}

interface MarkerBody {
  note: string;
  pid: number;
  host: string;
  startedAt: string;
  found: FoundState;
}

/** A restore target this process has claimed: marked incomplete until `complete()`. */
export interface ClaimedTarget {
  readonly dir: string;
  /** An incomplete restore was found there and removed first (`cleanIncomplete`). */
  readonly cleaned: boolean;
  /** Puts the held-back files in place, then removes the marker: from now on it starts. */
  complete(): Promise<void>;
  /** Returns the directory (and `DIR_tablespaces`) to how it was found. */
  giveBack(): Promise<void>;
}

/**
 * Claims `dir` for a restore: it must be absent or empty (WARDEN_E_TARGET_NOT_EMPTY), or hold an
 * incomplete restore, which is refused (WARDEN_E_RESTORE_INCOMPLETE) unless `cleanIncomplete`
 * asks to remove it first. Creates the directory when absent and writes the marker.
 */
export async function claimTarget(
  dir: string,
  options: { cleanIncomplete?: boolean; runAs?: RunAs | undefined } = {},
): Promise<ClaimedTarget> {
  // Before anything is written: the server's OS user must be able to reach the target.
  await checkServerCanReach(dir, options.runAs);
  let found: FoundState;
  let cleaned = false;
  const entries = await listDir(dir);
  if (entries === undefined) {
    found = { existed: false, tablespacesExisted: await exists(tablespacesDir(dir)) };
  } else if (entries.length === 0) {
    found = await foundExisting(dir);
  } else if (entries.includes(INCOMPLETE_MARKER)) {
    const leftover = await readMarker(dir);
    if (!options.cleanIncomplete || leftover.running) throw incomplete(dir, leftover);
    await returnToFound(dir, leftover.body?.found);
    cleaned = true;
    // The state before the interrupted restore is the one to return to after this one.
    found = leftover.body?.found ?? (await foundExisting(dir));
  } else {
    throw new WardenError('WARDEN_E_TARGET_NOT_EMPTY', `restore target ${dir} is not empty`, {
      hint: 'Restore into a new or empty directory; Warden never overwrites an existing data directory.',
      details: { targetDir: dir, entries: entries.slice(0, 5) },
    });
  }
  if (!found.existed || !(await exists(dir))) {
    const parents = await missingParents(dir);
    await createParents(parents, options.runAs);
    if (parents.length)
      found = { ...found, createdParents: [...new Set([...(found.createdParents ?? []), ...parents])] };
    await mkdir(dir, { mode: 0o700 });
  }
  const body: MarkerBody = {
    note:
      'A Warden restore into this directory has not completed (it is running, or was interrupted). ' +
      'PostgreSQL will not start it: PG_VERSION and global/pg_control are held back until the end. ' +
      `Remove it with: warden restore --clean-incomplete --target-dir ${dir}`,
    pid: process.pid,
    host: os.hostname(),
    startedAt: new Date().toISOString(),
    found,
  };
  const marker = path.join(dir, INCOMPLETE_MARKER);
  await writeFile(marker, `${JSON.stringify(body, null, 2)}\n`, {
    flag: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    mode: 0o600,
  });
  await fsyncPath(marker);
  await fsyncPath(dir);
  return {
    dir,
    cleaned,
    async complete() {
      for (const [name, staged] of HELD_BACK) {
        const placed = await rename(path.join(dir, staged), path.join(dir, name)).then(
          () => true,
          (error: NodeJS.ErrnoException) => {
            // An archive without it (not a data directory PostgreSQL would start anyway).
            if (error.code !== 'ENOENT') throw error;
            return false;
          },
        );
        if (placed) await fsyncPath(path.dirname(path.join(dir, name)));
      }
      await rm(marker);
      await fsyncPath(dir);
    },
    giveBack: () => returnToFound(dir, found),
  };
}

/**
 * `warden restore --clean-incomplete` without a restore: removes the incomplete restore in `dir`.
 * Returns false when there is nothing to remove (absent or empty); refuses a directory that is
 * not an incomplete restore, or one whose restore is still running.
 */
export async function removeIncompleteRestore(dir: string): Promise<boolean> {
  const entries = await listDir(dir);
  if (!entries?.length) return false;
  if (!entries.includes(INCOMPLETE_MARKER)) {
    throw new WardenError(
      'WARDEN_E_TARGET_NOT_EMPTY',
      `${dir} is not an incomplete Warden restore; nothing removed`,
      {
        hint: 'Only a directory holding warden-restore-incomplete.json is removed by --clean-incomplete.',
        details: { targetDir: dir, entries: entries.slice(0, 5) },
      },
    );
  }
  const leftover = await readMarker(dir);
  if (leftover.running) throw incomplete(dir, leftover);
  await returnToFound(dir, leftover.body?.found);
  return true;
}

/**
 * Everything the restore wrote goes, the marker last (a stop in the middle leaves a directory
 * still recognised as incomplete); then the directory itself when the restore made it, or its
 * mode and owner when it was there (empty) before. Without a known prior state (an unreadable
 * marker) the directory stays, emptied.
 */
async function returnToFound(dir: string, found: FoundState | undefined): Promise<void> {
  for (const entry of (await listDir(dir)) ?? []) {
    if (entry !== INCOMPLETE_MARKER) await rm(path.join(dir, entry), { recursive: true, force: true });
  }
  await rm(path.join(dir, INCOMPLETE_MARKER), { force: true });
  if (!found) return;
  if (!found.existed) await rm(dir, { recursive: true, force: true });
  else if (found.mode !== undefined) {
    await chmod(dir, found.mode).catch(() => undefined);
    if (found.uid !== undefined && found.gid !== undefined)
      await chown(dir, found.uid, found.gid).catch(() => undefined);
  }
  if (!found.tablespacesExisted) await rm(tablespacesDir(dir), { recursive: true, force: true });
  if (found.createdParents) await removeParents(found.createdParents);
}

/** Tablespaces are restored beside the target (see restore.ts). */
function tablespacesDir(dir: string): string {
  return `${dir}_tablespaces`;
}

async function foundExisting(dir: string): Promise<FoundState> {
  const info = await stat(dir);
  return {
    existed: true,
    mode: info.mode & 0o7777,
    uid: info.uid,
    gid: info.gid,
    tablespacesExisted: await exists(tablespacesDir(dir)),
  };
}

interface Leftover {
  body: MarkerBody | undefined;
  running: boolean;
}

/** A marker that does not parse is one whose writing was cut short: its restore is not running. */
async function readMarker(dir: string): Promise<Leftover> {
  let body: MarkerBody | undefined;
  try {
    const text = await readFile(path.join(dir, INCOMPLETE_MARKER), {
      encoding: 'utf8',
      flag: constants.O_RDONLY | constants.O_NOFOLLOW,
    });
    const parsed = JSON.parse(text) as Partial<MarkerBody>;
    if (typeof parsed.pid === 'number' && typeof parsed.found?.existed === 'boolean')
      body = parsed as MarkerBody;
  } catch {
    body = undefined;
  }
  const running =
    body !== undefined && body.host === os.hostname() && body.pid !== process.pid && processAlive(body.pid);
  return { body, running };
}

function incomplete(dir: string, leftover: Leftover): WardenError {
  const started = leftover.body ? ` (started ${leftover.body.startedAt} by PID ${leftover.body.pid})` : '';
  if (leftover.running) {
    return new WardenError(
      'WARDEN_E_RESTORE_INCOMPLETE',
      `a restore into ${dir} is still running${started}`,
      {
        hint: 'Wait for it, or stop it (Ctrl-C): a stopped restore returns the directory to how it found it.',
        details: { targetDir: dir, running: true, pid: leftover.body?.pid },
      },
    );
  }
  return new WardenError(
    'WARDEN_E_RESTORE_INCOMPLETE',
    `restore target ${dir} holds a restore that did not complete${started}; PostgreSQL will not start it`,
    {
      hint: `Add --clean-incomplete to remove it and restore again, or remove it alone with: warden restore --clean-incomplete --target-dir ${dir}`,
      details: { targetDir: dir, running: false, ...(leftover.body ? { pid: leftover.body.pid } : {}) },
    },
  );
}

async function listDir(dir: string): Promise<string[] | undefined> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
