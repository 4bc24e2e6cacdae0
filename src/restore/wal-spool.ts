import { lstat, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sha256 } from '../pipeline/hashing.ts';
import { tempSuffix } from '../repository/temp-name.ts';

/**
 * The prefetcher's side of the spool that `warden wal get`'s fast path serves from
 * (bin/wal-get-fast.js holds the reader's side and the layout; docs/wal-archive-commands.md):
 * ready segments named `<segment>.sha256-<hex>` (renamed into place once whole), `want` (the
 * segment the last call asked for), `state.json` (the verdict on a segment that could not be
 * fetched) and `prefetcher.pid` (the lock: one prefetcher per spool).
 */
export const READY_MARK = '.sha256-';
const READY = /^([0-9A-F]{24})\.sha256-[0-9a-f]{64}$/;
const LOCK = 'prefetcher.pid';

export interface Want {
  segment: string;
  at: number;
}

export interface Verdict {
  segment: string;
  /** When the check that gave this verdict started (the fast path ignores older ones). */
  at: number;
  missing?: true;
  /** The error code; the fast path then lets the CLI fetch and report it. */
  error?: string;
}

export class WalSpool {
  constructor(readonly dir: string) {}

  /** Takes the lock; false when a live process holds it. A lock of a dead process is taken over. */
  async lock(): Promise<boolean> {
    const file = path.join(this.dir, LOCK);
    for (let attempt = 0; attempt < 2; attempt += 1) {
      try {
        await writeFile(file, String(process.pid), { flag: 'wx', mode: 0o600 });
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      if (await this.lockAlive()) return false;
      await rm(file, { force: true });
    }
    return false;
  }

  /** Still ours: a prefetcher whose lock was taken over (or removed) stops. */
  async holdsLock(): Promise<boolean> {
    return (await readFile(path.join(this.dir, LOCK), 'utf8').catch(() => '')) === String(process.pid);
  }

  private async lockAlive(): Promise<boolean> {
    const pid = Number(await readFile(path.join(this.dir, LOCK), 'utf8').catch(() => ''));
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
  }

  async want(): Promise<Want | undefined> {
    try {
      const want = JSON.parse(await readFile(path.join(this.dir, 'want'), 'utf8')) as Partial<Want>;
      return typeof want.segment === 'string' &&
        /^[0-9A-F]{24}$/.test(want.segment) &&
        typeof want.at === 'number'
        ? { segment: want.segment, at: want.at }
        : undefined;
    } catch {
      return undefined;
    }
  }

  /** Segment names ready to be served, sorted. */
  async ready(): Promise<string[]> {
    const names: string[] = [];
    for (const entry of await readdir(this.dir)) {
      const match = READY.exec(entry);
      if (match) names.push(match[1]!);
    }
    return names.sort();
  }

  /**
   * Writes a verified segment under a temp name, then renames it ready. Not fsynced: a file
   * damaged by a crash fails the fast path's SHA-256 check and is fetched again.
   */
  async put(segment: string, data: Buffer): Promise<void> {
    const final = path.join(this.dir, `${segment}${READY_MARK}${sha256(data)}`);
    await this.writeAtomically(final, data);
  }

  async verdict(verdict: Verdict): Promise<void> {
    await this.writeAtomically(path.join(this.dir, 'state.json'), Buffer.from(JSON.stringify(verdict)));
  }

  /** Removes ready segments the filter rejects, and temp files (a write of ours that failed or of a killed writer). */
  async prune(keep: (segment: string) => boolean): Promise<void> {
    for (const entry of await readdir(this.dir)) {
      const match = READY.exec(entry);
      if ((match && !keep(match[1]!)) || entry.includes('.tmp-'))
        await rm(path.join(this.dir, entry), { force: true });
    }
  }

  /**
   * Leaves nothing behind: every file of the spool, the lock last, then the spool directory and
   * its root when empty (another spool may share the root).
   */
  async close(): Promise<void> {
    if (!(await this.holdsLock())) return;
    for (const entry of await readdir(this.dir).catch(() => [] as string[]))
      if (entry !== LOCK) await rm(path.join(this.dir, entry), { force: true });
    await rm(path.join(this.dir, LOCK), { force: true });
    for (const dir of [this.dir, path.dirname(this.dir)]) await rmdir(dir).catch(() => undefined);
  }

  private async writeAtomically(file: string, data: Buffer): Promise<void> {
    const temp = `${file}${tempSuffix()}`;
    try {
      await writeFile(temp, data, { flag: 'wx', mode: 0o600 });
      await rename(temp, file);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }
}

/** The spool directory is private to this OS user and not a symlink (the fast path checks the same). */
export async function spoolIsPrivate(dir: string): Promise<boolean> {
  for (const each of [path.dirname(dir), dir]) {
    const info = await lstat(each).catch(() => undefined);
    const ours = typeof process.getuid !== 'function' || info?.uid === process.getuid();
    if (!info?.isDirectory() || !ours || (info.mode & 0o077) !== 0) return false;
  }
  return true;
}
