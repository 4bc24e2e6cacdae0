import { WardenError } from '../errors.ts';
import { BlockPool } from '../pipeline/block-pool.ts';
import type { Appender } from '../repository/object-store.ts';
import type { Repository } from '../repository/repository.ts';
import { archiveSegment, partialKey, removePartialTemps } from '../repository/wal-archive.ts';
import { formatLsn, segmentName, type Lsn } from '../wal/lsn.ts';
import { PartialWriter, scanPartial } from '../wal/partial-format.ts';

/**
 * Completed segments waiting for compression and upload before `write` waits for them: one, so
 * a streaming receiver keeps acknowledging while a segment is archived. Each is a 16 MiB buffer.
 */
const MAX_ARCHIVE_BACKLOG = 1;

/**
 * The segment being received: kept in memory and appended to the repository's partial file,
 * one frame per sync — sealed to the repository's recipients when it has any, else checksummed
 * (`partial-format.ts`), so no WAL byte is ever at rest in the clear; and signed with the
 * handle's signing key when it has one, so readers can tell it from a forged partial.
 * A completed segment is fsynced in its partial file (so it is durable and may be reported as
 * flushed at once) and then compressed and archived in the background, off the receive path;
 * its partial file is removed only after the archived copy is committed.
 *
 * Catch-up (a backup's WAL to its end LSN) has nobody waiting for acknowledgements: a completed
 * segment is archived at once instead, before the next one is received, and its partial file is
 * not written first (on an object store that was a second upload of 16 MiB, uncompressed, per
 * segment); the partial file is opened only when a sync asks for it. Durability is the same:
 * nothing past a segment is reported flushed before that segment's archived copy is committed.
 */
export class SegmentWriter {
  private buffer: Buffer;
  private appender: Appender | undefined;
  private frames: PartialWriter | undefined;
  /** WAL bytes an earlier run's partial of this segment holds, until the restream passes them. */
  private keep = 0;
  private segmentStartLsn: Lsn = 0n;
  private filled = 0;
  /** Bytes of the segment already handed to the partial file (the rest is only in memory). */
  private persisted = 0;
  private backlog: Array<Promise<void>> = [];
  private archiveError: unknown;
  /** The current segment's partial object may exist (found at open, or opened for appending). */
  private partialMayExist = false;
  /** A sync failed: this partial takes no more writes (the next session restreams the segment). */
  private syncFailed = false;
  private readonly catchUp: boolean;

  constructor(
    private readonly repository: Repository,
    private readonly timeline: number,
    private readonly segmentSize: number,
    /** `catchUp`: archive completed segments at once, without writing their partial file first. */
    options: { catchUp?: boolean } = {},
  ) {
    this.buffer = newSegmentBuffer(segmentSize);
    this.catchUp = options.catchUp === true;
  }

  /** The repository's preferred minimum time between syncs of the partial segment. */
  get syncIntervalMs(): number {
    return this.appender?.syncIntervalMs ?? 0;
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
    this.persisted = 0;
    this.partialMayExist = false;
    const key = partialKey(this.timeline, this.name);
    // Restream the whole segment, under a new file key (and salt) each time, so no frame nonce
    // is ever used twice under one key. What an earlier run left in the partial stays until the
    // restream has passed it: truncating first would lose WAL the repository held, if this run
    // died before its first sync (the fault suite's kill loop found that).
    this.keep = await this.durablePartialBytes(key);
    const signingKey = this.repository.keys.signingKey;
    this.frames = await PartialWriter.create(
      this.name,
      this.repository.keys.recipients,
      signingKey ? { key: signingKey, systemId: this.repository.meta.systemId } : undefined,
    );
    if (this.keep > 0 || this.catchUp) return;
    await this.openAppender();
  }

  /** Opens the partial file for appending, emptied, starting with the frames' preamble. */
  private async openAppender(): Promise<void> {
    const appender = await this.repository.store.openAppender(partialKey(this.timeline, this.name));
    this.partialMayExist = true;
    try {
      if (appender.size > 0) await appender.truncate(0);
      await appender.append(this.frames!.preamble);
    } catch (error) {
      // Disk full on the preamble: nobody else holds this handle to close it.
      await appender.close();
      throw error;
    }
    this.appender = appender;
  }

  /**
   * WAL bytes in complete frames of an earlier run's partial of this segment (0 when there is
   * none, or it is damaged), made durable (an earlier run killed before its fsync may have left
   * them in the page cache only).
   */
  private async durablePartialBytes(key: string): Promise<number> {
    const store = this.repository.store;
    if (!(await store.stat(key))) return 0;
    this.partialMayExist = true;
    // A replacement cut short by a kill leaves its temp object (and the partial it was to
    // replace, so this is only looked for when there is one); this writer, holding the stream
    // lock, is the only one that writes this partial, so the temp object is nobody's.
    await removePartialTemps(store, key);
    let validBytes: number;
    try {
      validBytes = scanPartial(await store.getBuffer(key), key, this.segmentSize).validBytes;
    } catch {
      return 0;
    }
    if (validBytes > 0) {
      const appender = await store.openAppender(key);
      try {
        await appender.sync();
      } finally {
        await appender.close();
      }
    }
    return validBytes;
  }

  /**
   * The restream has passed what the earlier run's partial held: one atomic write replaces it
   * with the new file (the old one stands until then), and appending goes on from there.
   */
  private async replaceEarlierPartial(): Promise<void> {
    const key = partialKey(this.timeline, this.name);
    const frames = this.frames!;
    await this.repository.store.putBuffer(
      key,
      Buffer.concat([frames.preamble, frames.frame(this.buffer.subarray(0, this.filled))]),
    );
    this.persisted = this.filled;
    this.keep = 0;
    this.appender = await this.repository.store.openAppender(key);
    this.partialMayExist = true;
  }

  async write(dataStart: Lsn, payload: Buffer): Promise<void> {
    this.throwArchiveError();
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
      // Only into memory here: `sync` writes everything new to the partial file in one go,
      // instead of one write call per message. The buffer starts zeroed, so zeros (the padding
      // the server streams after a WAL switch: most of a segment when it comes early) need no
      // copy, and its pages stay unmapped.
      if (!isZero(piece)) piece.copy(this.buffer, this.filled);
      this.filled += piece.length;
      offset += piece.length;
      if (this.filled === this.segmentSize) await this.finishSegment();
    }
  }

  async sync(): Promise<void> {
    this.throwArchiveError();
    if (!this.frames) return;
    if (this.keep > 0) {
      // Up to `keep` bytes, the earlier run's partial already holds them durably.
      if (this.filled < this.keep) return;
      await this.replaceEarlierPartial();
      return;
    }
    // Catch-up opens the partial file on its first sync with WAL to hold (none at a segment's
    // start: the archived segments before it hold everything up to here).
    if (!this.appender && this.catchUp) {
      if (this.filled === 0 || this.syncFailed) return;
      await this.openAppender();
    }
    const appender = this.appender;
    if (!appender) return;
    try {
      if (this.filled > this.persisted) {
        await appendFrame(appender, this.frames, this.buffer.subarray(this.persisted, this.filled));
        this.persisted = this.filled;
      }
      await appender.sync();
    } catch (error) {
      // Disk full, I/O error: this partial file takes no more writes (the next session restreams
      // the segment into a new one), so its handle is closed now, not left to the GC.
      this.appender = undefined;
      this.syncFailed = true;
      await appender.close();
      throw error;
    }
  }

  /** A full segment: make it durable, hand it to the background archiver, start the next. */
  private async finishSegment(): Promise<void> {
    if (this.catchUp) {
      await this.archiveNow();
    } else {
      await this.sync();
      await this.appender!.close();
      this.appender = undefined;
      this.archiveInBackground(this.name, this.buffer, this.segmentSize);
      // Wait for the backlog before taking the next buffer: the archived one's memory comes back
      // from the compressor then, and is reused.
      if (this.backlog.length > MAX_ARCHIVE_BACKLOG) await this.backlog[0];
    }
    this.buffer = newSegmentBuffer(this.segmentSize);
    await this.open(this.segmentStartLsn + BigInt(this.segmentSize));
  }

  /**
   * Catch-up: the completed segment goes straight into the archive (committed before this
   * returns), then its partial file, if one was written, is removed. Unsynced appends to that
   * file are dropped with it: the archived copy holds every byte.
   */
  private async archiveNow(): Promise<void> {
    this.throwArchiveError();
    const appender = this.appender;
    this.appender = undefined;
    await appender?.close();
    await archiveSegment(this.repository, this.timeline, this.name, this.buffer, this.segmentSize);
    if (this.partialMayExist) await this.repository.store.delete(partialKey(this.timeline, this.name));
    this.keep = 0;
  }

  /** The timeline ended inside this segment: archive its valid prefix. */
  async finishPartial(): Promise<void> {
    if (this.filled > 0) {
      await this.sync();
      await this.appender?.close();
      this.appender = undefined;
      this.archiveInBackground(this.name, this.buffer, this.filled);
    }
    await this.close();
  }

  private archiveInBackground(segment: string, data: Buffer, validBytes: number): void {
    const previous = this.backlog.at(-1) ?? Promise.resolve();
    const task = previous
      .then(async () => {
        await archiveSegment(this.repository, this.timeline, segment, data, validBytes);
        await this.repository.store.delete(partialKey(this.timeline, segment));
      })
      .catch((error: unknown) => {
        this.archiveError ??= error;
      })
      .finally(() => {
        this.backlog = this.backlog.filter((pending) => pending !== task);
      });
    this.backlog.push(task);
  }

  private throwArchiveError(): void {
    if (this.archiveError !== undefined) throw this.archiveError;
  }

  /** Waits for background archiving, then closes the current partial file. */
  async close(): Promise<void> {
    await Promise.all(this.backlog);
    await this.appender?.close();
    this.appender = undefined;
    this.throwArchiveError();
  }
}

/** Frames of at least this much WAL are appended piece by piece rather than copied into one buffer. */
const PIECEWISE_FRAME_BYTES = 64 * 1024;

/**
 * Appends the frame of `data`. A large one (a catch-up syncs megabytes at a time) goes as its
 * pieces, so the WAL is written from the segment buffer itself instead of being copied into a
 * fresh frame-sized buffer first; a crash between the pieces leaves a torn last frame, which
 * readers ignore as they do a torn single write. Small ones (a live stream syncs every burst)
 * take one write call.
 */
async function appendFrame(appender: Appender, frames: PartialWriter, data: Buffer): Promise<void> {
  if (data.length < PIECEWISE_FRAME_BYTES) {
    await appender.append(frames.frame(data));
    return;
  }
  for (const piece of frames.framePieces(data)) await appender.append(piece);
}

const ZEROS = Buffer.alloc(256 * 1024);

/** Whether `data` holds only zero bytes (a memcmp against a zero buffer, in slices). */
function isZero(data: Buffer): boolean {
  for (let offset = 0; offset < data.length; offset += ZEROS.length) {
    const slice = data.subarray(offset, offset + ZEROS.length);
    if (!slice.equals(ZEROS.subarray(0, slice.length))) return false;
  }
  return true;
}

/**
 * A zeroed segment buffer, reusing the memory of one the compression worker handed back: a fresh
 * 16 MiB buffer per segment stays resident until a late GC, which showed as the peak RSS of a
 * backup's WAL catch-up. Zeroed because a partial segment is archived with its unwritten tail.
 */
function newSegmentBuffer(size: number): Buffer {
  return BlockPool.get().takeZeroed(size);
}
