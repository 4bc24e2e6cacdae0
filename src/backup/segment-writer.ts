import { WardenError } from '../errors.ts';
import type { Appender } from '../repository/object-store.ts';
import type { Repository } from '../repository/repository.ts';
import { archiveSegment, partialKey } from '../repository/wal-archive.ts';
import { formatLsn, segmentName, type Lsn } from '../wal/lsn.ts';

/** The segment being received: kept in memory and appended to the repository's partial file. */
export class SegmentWriter {
  private buffer: Buffer;
  private appender: Appender | undefined;
  private segmentStartLsn: Lsn = 0n;
  private filled = 0;

  constructor(
    private readonly repository: Repository,
    private readonly timeline: number,
    private readonly segmentSize: number,
  ) {
    this.buffer = Buffer.alloc(segmentSize);
  }

  get position(): Lsn {
    return this.segmentStartLsn + BigInt(this.filled);
  }

  private get name(): string {
    return segmentName(this.timeline, this.segmentStartLsn, this.segmentSize);
  }

  async open(startLsn: Lsn): Promise<void> {
    this.segmentStartLsn = startLsn;
    this.filled = 0;
    this.buffer.fill(0);
    this.appender = await this.repository.store.openAppender(partialKey(this.timeline, this.name));
    // Restream the whole segment: bytes past the last fsync of an earlier run are not trusted.
    if (this.appender.size > 0) await this.appender.truncate(0);
  }

  async write(dataStart: Lsn, payload: Buffer): Promise<void> {
    if (dataStart !== this.position) {
      throw new WardenError(
        'WARDEN_E_PROTOCOL',
        `WAL data starts at ${formatLsn(dataStart)}, expected ${formatLsn(this.position)}`,
      );
    }
    let offset = 0;
    while (offset < payload.length) {
      const room = this.segmentSize - this.filled;
      const piece = payload.subarray(offset, offset + room);
      piece.copy(this.buffer, this.filled);
      await this.appender!.append(piece);
      this.filled += piece.length;
      offset += piece.length;
      if (this.filled === this.segmentSize) await this.finishSegment();
    }
  }

  async sync(): Promise<void> {
    await this.appender?.sync();
  }

  /** A full segment: archive it compressed, then drop the partial file and start the next. */
  private async finishSegment(): Promise<void> {
    await this.archive(this.segmentSize);
    await this.open(this.segmentStartLsn + BigInt(this.segmentSize));
  }

  /** The timeline ended inside this segment: archive its valid prefix. */
  async finishPartial(): Promise<void> {
    if (this.filled > 0) await this.archive(this.filled);
    else await this.close();
  }

  private async archive(validBytes: number): Promise<void> {
    const key = partialKey(this.timeline, this.name);
    await archiveSegment(this.repository, this.timeline, this.name, this.buffer, validBytes);
    await this.appender?.close();
    this.appender = undefined;
    await this.repository.store.delete(key);
  }

  async close(): Promise<void> {
    await this.appender?.close();
    this.appender = undefined;
  }
}
