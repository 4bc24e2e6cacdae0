import { createReadStream } from 'node:fs';
import { link, open, readdir, readFile, rename, rm, rmdir, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { WardenError } from '../../errors.ts';
import { fsyncPath } from '../../util/sync-tree.ts';
import type { Appender, ObjectStore, PutOptions } from '../object-store.ts';
import { FsAccess, type ModeAudit } from './fs-access.ts';
import { tempSuffix } from '../temp-name.ts';
import type { RepositoryGroup } from './repository-group.ts';

/**
 * The filesystem adapter: objects are files under a root directory. Writes go to a temp file,
 * are fsynced, renamed into place and the directory fsynced, so a crash leaves either the old
 * state or the new object, never a torn one. Leftover `*.tmp-*` files are ignored by `list`.
 * Everything it creates is private to the OS user running Warden (directories 0700, files 0600),
 * or shared with `group` (0750, 0640) when one is given, whatever the umask.
 */
export class FsObjectStore implements ObjectStore {
  readonly root: string;
  readonly access: FsAccess;

  constructor(root: string, options: { group?: RepositoryGroup } = {}) {
    this.root = path.resolve(root);
    this.access = new FsAccess(options.group);
  }

  get location(): string {
    return this.root;
  }

  /** `put` has written each chunk before it takes the next one from its source. */
  readonly putConsumesChunks = true;

  /** A directory has no storage classes: `options.storageClass` is ignored. */
  async put(key: string, source: Readable | AsyncIterable<Buffer>, options: PutOptions = {}) {
    const target = this.pathOf(key);
    await this.access.ensureDir(path.dirname(target));
    const temp = `${target}${tempSuffix()}`;
    let size = 0;
    let handle: FileHandle | undefined;
    try {
      handle = await open(temp, 'w', this.access.createMode);
      await this.access.applyTo(handle);
      // One write at a time, straight from the producer's chunk: once the next chunk is asked
      // for, the previous one is on its way to disk and its memory may be reused.
      for await (const chunk of source as AsyncIterable<Buffer>) {
        if (options.signal?.aborted)
          throw new WardenError('WARDEN_E_ABORTED', `writing ${key} was cancelled`);
        await writeAll(handle, chunk);
        size += chunk.length;
      }
      await handle.sync();
      await handle.close();
      handle = undefined;
      await rename(temp, target);
      await fsyncPath(path.dirname(target));
      return { size };
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await rm(temp, { force: true });
      if (error instanceof WardenError) throw error;
      throw ioError(error, `writing ${key}`);
    }
  }

  async putBuffer(key: string, data: Buffer): Promise<void> {
    const target = this.pathOf(key);
    await this.access.ensureDir(path.dirname(target));
    const temp = `${target}${tempSuffix()}`;
    try {
      await this.writeSynced(temp, data, 'w');
      await rename(temp, target);
      await fsyncPath(path.dirname(target));
    } catch (error) {
      await rm(temp, { force: true });
      throw ioError(error, `writing ${key}`);
    }
  }

  get(key: string): Readable {
    return createReadStream(this.pathOf(key), { highWaterMark: 1024 * 1024 });
  }

  async getBuffer(key: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(key));
    } catch (error) {
      throw ioError(error, `reading ${key}`);
    }
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    try {
      const info = await stat(this.pathOf(key));
      return { size: info.size };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw ioError(error, `inspecting ${key}`);
    }
  }

  async list(prefix: string, options: { includeIncomplete?: boolean } = {}): Promise<string[]> {
    const base = this.pathOf(prefix);
    const keys: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw ioError(error, `listing ${prefix}`);
      }
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (options.includeIncomplete || !entry.name.includes('.tmp-'))
          keys.push(path.relative(this.root, full).split(path.sep).join('/'));
      }
    };
    await walk(base);
    return keys.sort();
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true, recursive: true });
  }

  async openAppender(key: string): Promise<Appender> {
    const target = this.pathOf(key);
    await this.access.ensureDir(path.dirname(target));
    let handle: FileHandle | undefined;
    try {
      handle = await open(target, 'a+', this.access.createMode);
      // Also an existing partial segment (from before modes were set): it is rewritten anyway.
      await this.access.applyTo(handle);
      const size = (await handle.stat()).size;
      await fsyncPath(path.dirname(target));
      return new FsAppender(handle, size, key);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      throw ioError(error, `opening ${key}`);
    }
  }

  /**
   * Written to a temp file and fsynced first, then hard-linked into place: link() fails when the
   * name exists (exclusive), and a reader never sees the file before all of it is there (an
   * `open(wx)` + write would show an empty or half-written file for a moment).
   */
  async createExclusive(key: string, data: Buffer): Promise<boolean> {
    const target = this.pathOf(key);
    await this.access.ensureDir(path.dirname(target));
    const temp = `${target}${tempSuffix()}`;
    try {
      await this.writeSynced(temp, data, 'wx');
      await link(temp, target);
      await fsyncPath(path.dirname(target));
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw ioError(error, `creating ${key}`);
    } finally {
      await rm(temp, { force: true });
    }
  }

  /** Writes `data` to a new file with the repository's mode and group, durable before it returns. */
  private async writeSynced(file: string, data: Buffer, flags: 'w' | 'wx'): Promise<void> {
    const handle = await open(file, flags, this.access.createMode);
    try {
      await this.access.applyTo(handle);
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async listEmptyDirectories(prefix: string): Promise<string[]> {
    const found: string[] = [];
    // True when `dir` holds no file at any depth; only the outermost such directory is listed.
    const holdsNoFile = async (dir: string, top: boolean): Promise<boolean> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw ioError(error, `listing ${prefix}`);
      }
      const empty: string[] = [];
      let hasFile = false;
      for (const entry of entries) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory() && (await holdsNoFile(full, false))) empty.push(full);
        else hasFile = true;
      }
      if (!hasFile && !top) return true;
      for (const full of empty) found.push(`${path.relative(this.root, full).split(path.sep).join('/')}/`);
      return false;
    };
    await holdsNoFile(this.pathOf(prefix), true);
    return found.sort();
  }

  async removeEmptyDirectory(key: string): Promise<boolean> {
    // rmdir, deepest first: it refuses a directory that is not empty, so no file is ever removed.
    const remove = async (dir: string): Promise<boolean> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const entry of entries) {
        if (!entry.isDirectory() || !(await remove(path.join(dir, entry.name)))) return false;
      }
      try {
        await rmdir(dir);
        return true;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return true;
        if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
        throw ioError(error, `removing ${key}`);
      }
    };
    return remove(this.pathOf(key));
  }

  /** The entries of this repository looser than its policy (reported by `warden verify`). */
  auditModes(): Promise<ModeAudit> {
    return this.access.audit(this.root);
  }

  private pathOf(key: string): string {
    const resolved = path.resolve(this.root, key);
    if (resolved !== this.root && !resolved.startsWith(this.root + path.sep)) {
      throw new WardenError('WARDEN_E_INTERNAL', `object key escapes the repository: ${key}`);
    }
    return resolved;
  }
}

class FsAppender implements Appender {
  constructor(
    private readonly handle: FileHandle,
    private currentSize: number,
    private readonly key: string,
  ) {}

  get size(): number {
    return this.currentSize;
  }

  readonly syncIntervalMs = 0;

  async append(data: Buffer): Promise<void> {
    let written = 0;
    try {
      while (written < data.length) {
        const { bytesWritten } = await this.handle.write(
          data,
          written,
          data.length - written,
          this.currentSize + written,
        );
        written += bytesWritten;
      }
    } catch (error) {
      throw ioError(error, `appending to ${this.key}`);
    }
    this.currentSize += data.length;
  }

  async sync(): Promise<void> {
    await this.handle.datasync().catch((error: unknown) => {
      throw ioError(error, `syncing ${this.key}`);
    });
  }

  async truncate(size: number): Promise<void> {
    await this.handle.truncate(size).catch((error: unknown) => {
      throw ioError(error, `truncating ${this.key}`);
    });
    this.currentSize = size;
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}

async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset);
    offset += bytesWritten;
  }
}

function ioError(error: unknown, what: string): WardenError {
  if (error instanceof WardenError) return error;
  if ((error as Error).name === 'AbortError') {
    return new WardenError('WARDEN_E_ABORTED', `${what} was cancelled`, { cause: error });
  }
  const code = (error as NodeJS.ErrnoException).code;
  const full = code === 'ENOSPC' || code === 'EDQUOT';
  return new WardenError(
    'WARDEN_E_REPO_IO',
    `repository I/O failed ${what}: ${code ?? (error as Error).message}`,
    {
      ...(full
        ? {
            hint: 'The repository filesystem is full: free space there (`warden expire`) or move the repository.',
          }
        : {}),
      details: { errno: code },
      cause: error,
    },
  );
}
