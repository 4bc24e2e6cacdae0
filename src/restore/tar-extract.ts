import { mkdir, open, symlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { WardenError } from '../errors.ts';
import { BlockPool } from '../pipeline/block-pool.ts';
import { parseTarHeader, TAR_BLOCK, type TarHeader } from './tar-header.ts';

/** Files being written at once (open, write, close), across the small files of one chunk. */
const MAX_OPEN_FILES = 16;

/**
 * Extracts a tar stream (PostgreSQL's ustar archives) into `targetDir`, refusing entries that
 * would land outside it; returns the number of files written.
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
): Promise<number> {
  const extractor = new TarExtractor(targetDir, label);
  const blocks = BlockPool.get();
  try {
    for await (const chunk of source) {
      await extractor.write(chunk);
      if (blocks.owns(chunk)) blocks.giveBack(chunk.buffer);
    }
    extractor.end();
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

  constructor(destination: string, mode: number) {
    this.handle = open(destination, 'w', mode);
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
  private readonly madeDirs = new Set<string>();

  constructor(
    private readonly targetDir: string,
    private readonly label: string,
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

  /** The archive ended: refuses one that stops inside an entry. */
  end(): void {
    if (this.file || this.skip > 0 || this.headerFilled > 0) {
      throw new WardenError('WARDEN_E_REPO_CORRUPT', `${this.label} ends in the middle of an entry`, {
        details: { object: this.label },
      });
    }
  }

  private async startEntry(header: TarHeader | 'end'): Promise<void> {
    if (header === 'end') {
      this.finished = true;
      return;
    }
    const destination = safeDestination(this.targetDir, header.name, this.label);
    const padding = (TAR_BLOCK - (header.size % TAR_BLOCK)) % TAR_BLOCK;
    if (header.type === 'directory') {
      await this.ensureDir(destination);
      this.skip = header.size + padding;
    } else if (header.type === 'symlink') {
      await this.ensureDir(path.dirname(destination));
      await symlink(header.linkname, destination);
      this.skip = header.size + padding;
    } else if (header.type === 'file') {
      await this.ensureDir(path.dirname(destination));
      if (this.inFlight.length >= MAX_OPEN_FILES) await this.drain();
      const writer = new FileWriter(destination, header.mode & 0o777);
      this.file = { writer, remaining: header.size, padding };
      this.files += 1;
      if (header.size === 0) this.closeFile();
    } else {
      this.skip = header.size + padding;
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

  private async ensureDir(dir: string): Promise<void> {
    if (this.madeDirs.has(dir)) return;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    this.madeDirs.add(dir);
  }
}

/** Where a tar entry lands; refuses names that would leave `targetDir` (`../`, absolute paths). */
export function safeDestination(targetDir: string, name: string, label: string): string {
  const destination = path.resolve(targetDir, name);
  if (destination !== targetDir && !destination.startsWith(targetDir + path.sep)) {
    throw new WardenError('WARDEN_E_REPO_CORRUPT', `${label} holds an entry outside the target: ${name}`, {
      details: { object: label, entry: name },
    });
  }
  return destination;
}
