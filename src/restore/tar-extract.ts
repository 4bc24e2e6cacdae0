import type { FileHandle } from 'node:fs/promises';
import { WardenError } from '../errors.ts';
import { BlockPool } from '../pipeline/block-pool.ts';
import { ConfinedDir } from './confined-dir.ts';
import { checkTablespaceLink, refuseSpecial } from './entry-policy.ts';
import { parseTarHeader, TAR_BLOCK, type TarHeader } from './tar-header.ts';

/** Files being written at once (open, write, close), across the small files of one chunk. */
const MAX_OPEN_FILES = 16;

export interface ExtractOptions {
  /**
   * OIDs of the backup's tablespaces, given for the main data directory's archive: its
   * `pg_tblspc/<oid>` symlinks are the only ones allowed. Absent: no symlink at all.
   */
  tablespaces?: ReadonlySet<string>;
  /** Files written under another name (see ConfinedDir). */
  heldBack?: ReadonlyMap<string, string>;
}

/**
 * Extracts a tar stream (PostgreSQL's ustar archives) into `targetDir`, an empty directory;
 * returns the number of files written. Nothing is written outside `targetDir` whatever the
 * archive holds (see ConfinedDir): an entry PostgreSQL never writes (hard link, device, FIFO,
 * absolute or `..` name, a path through a symlink, a symlink other than a tablespace's, a name
 * seen twice) fails the extraction as a corrupt archive, naming the entry and the problem.
 * Tablespace symlinks are created last, after every file is written.
 *
 * Each chunk is taken apart in place: file data is written straight from it with positional
 * writes (small files of a chunk concurrently), and the next chunk is taken once those writes
 * are done, while the decompressor is already working ahead. A chunk that is BlockPool memory
 * (the parallel zstd decompressor's output) is then given back, so a restore recycles a few
 * blocks instead of leaving gigabytes of garbage buffers to the GC.
 */
export async function extractTar(
  source: AsyncIterable<Buffer>,
  targetDir: string,
  label: string,
  options: ExtractOptions = {},
): Promise<number> {
  const extractor = new TarExtractor(
    new ConfinedDir(targetDir, label, options.heldBack),
    label,
    options.tablespaces,
  );
  const blocks = BlockPool.get();
  try {
    for await (const chunk of source) {
      await extractor.write(chunk);
      if (blocks.owns(chunk)) blocks.giveBack(chunk.buffer);
    }
    await extractor.end();
  } catch (error) {
    await extractor.abandon();
    throw error;
  }
  return extractor.files;
}

/** A regular file being written: positional writes, any number in flight, closed once all landed. */
class FileWriter {
  private readonly handle: Promise<FileHandle>;
  private readonly writes: Array<Promise<unknown>> = [];
  private position = 0;

  constructor(handle: Promise<FileHandle>) {
    this.handle = handle;
    handle.catch(() => undefined); // thrown by the write or close that awaits it
  }

  write(data: Buffer): Promise<unknown> {
    const at = this.position;
    this.position += data.length;
    const written = this.handle.then((handle) => handle.write(data, 0, data.length, at));
    this.writes.push(written);
    return written;
  }

  async close(): Promise<void> {
    const handle = await this.handle;
    try {
      await Promise.all(this.writes);
    } finally {
      await handle.close();
    }
  }
}

class TarExtractor {
  files = 0;
  private readonly header = Buffer.alloc(TAR_BLOCK);
  private headerFilled = 0;
  /** The file whose data comes next, and how much of it. */
  private file: { writer: FileWriter; remaining: number; padding: number } | undefined;
  /** Bytes to pass over: padding to the next 512-byte block, or an entry that is not written. */
  private skip = 0;
  private finished = false;
  /** Writes and closes that read the current chunk (or started in it): awaited before the next. */
  private inFlight: Array<Promise<unknown>> = [];

  constructor(
    private readonly dir: ConfinedDir,
    private readonly label: string,
    private readonly tablespaces: ReadonlySet<string> | undefined,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length && !this.finished) {
      const available = chunk.length - offset;
      if (this.skip > 0) {
        const n = Math.min(this.skip, available);
        this.skip -= n;
        offset += n;
      } else if (this.file) {
        const n = Math.min(this.file.remaining, available);
        this.track(this.file.writer.write(chunk.subarray(offset, offset + n)));
        this.file.remaining -= n;
        offset += n;
        if (this.file.remaining === 0) this.closeFile();
      } else {
        const n = Math.min(TAR_BLOCK - this.headerFilled, available);
        chunk.copy(this.header, this.headerFilled, offset, offset + n);
        this.headerFilled += n;
        offset += n;
        if (this.headerFilled === TAR_BLOCK) {
          this.headerFilled = 0;
          await this.startEntry(parseTarHeader(this.header, this.label));
        }
      }
    }
    await this.drain();
  }

  /**
   * The archive ended and every file is written (drained after each chunk): refuses one that
   * stops inside an entry, then creates the tablespace symlinks.
   */
  async end(): Promise<void> {
    if (this.file || this.skip > 0 || this.headerFilled > 0) {
      throw new WardenError('WARDEN_E_REPO_CORRUPT', `${this.label} ends in the middle of an entry`, {
        details: { object: this.label },
      });
    }
    await this.dir.createLinks();
  }

  private async startEntry(header: TarHeader | 'end'): Promise<void> {
    if (header === 'end') {
      this.finished = true;
      return;
    }
    const entry = header.name;
    const parts = this.dir.parse(entry);
    const padding = (TAR_BLOCK - (header.size % TAR_BLOCK)) % TAR_BLOCK;
    if (header.type === 'directory') {
      await this.dir.ensureDir(parts, entry);
      this.skip = header.size + padding;
    } else if (header.type === 'symlink') {
      await checkTablespaceLink(this.dir, parts, entry, header.linkname, this.tablespaces);
      await this.dir.deferLink(parts, entry, header.linkname);
      this.skip = header.size + padding;
    } else if (header.type === 'file') {
      const destination = await this.dir.prepareFile(parts, entry);
      if (this.inFlight.length >= MAX_OPEN_FILES) await this.drain();
      // O_EXCL: the target starts empty, so a name that exists was already in the archive.
      const writer = new FileWriter(this.dir.open(destination, entry, 'new', header.mode & 0o777));
      this.file = { writer, remaining: header.size, padding };
      this.files += 1;
      if (header.size === 0) this.closeFile();
    } else {
      throw refuseSpecial(this.dir, entry, SPECIAL[header.type]);
    }
  }

  /** After a failure: lets what is in flight settle and closes the open file (no fd left behind). */
  async abandon(): Promise<void> {
    if (this.file) this.closeFile();
    await Promise.allSettled(this.inFlight);
    this.inFlight = [];
  }

  /** The file's data is all handed out: close it once written, then pass its padding. */
  private closeFile(): void {
    this.track(this.file!.writer.close());
    this.skip = this.file!.padding;
    this.file = undefined;
  }

  private track(work: Promise<unknown>): void {
    work.catch(() => undefined); // awaited (and thrown) at the end of the chunk
    this.inFlight.push(work);
  }

  private async drain(): Promise<void> {
    const inFlight = this.inFlight;
    this.inFlight = [];
    await Promise.all(inFlight);
  }
}

const SPECIAL = {
  hardlink: 'hard-link',
  device: 'device-file',
  fifo: 'fifo',
  other: 'unsupported-type',
} as const;
