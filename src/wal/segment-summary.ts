/**
 * Summarizes one WAL segment without replaying it: how far it holds valid WAL, and when the
 * transactions it commits were committed. The restore planner uses the commit times to pick
 * segments for a point-in-time target; the WAL receiver uses the page checks to catch damage.
 *
 * Record bodies are skipped by length (page by page), never copied; only commit and restore point
 * records are decoded. Nothing in the data makes this throw: problems end the walk and are listed in
 * `pageErrors` / `recordErrors`, the way PostgreSQL's xlogreader ends WAL at the first bad page.
 */
import { WardenError } from '../errors.ts';
import { formatLsn, isValidSegmentSize, type Lsn } from './lsn.ts';
import { timelineOfLsn, type TimelineHistoryEntry } from './timeline-history.ts';
import {
  crc32cUpdate,
  DEFAULT_WAL_PAGE_SIZE,
  findMainData,
  MAXALIGN,
  POSTGRES_EPOCH_MICROS,
  RM_XACT_ID,
  RM_XLOG_ID,
  SIZE_OF_LONG_PAGE_HEADER,
  SIZE_OF_RESTORE_POINT,
  SIZE_OF_SHORT_PAGE_HEADER,
  SIZE_OF_XLOG_RECORD,
  WAL_PAGE_MAGIC,
  XL_CRC_OFFSET,
  XLOG_RESTORE_POINT,
  XLOG_SWITCH,
  XLOG_XACT_COMMIT,
  XLOG_XACT_COMMIT_PREPARED,
  XLOG_XACT_OPMASK,
  XLP_ALL_FLAGS,
  XLP_FIRST_IS_CONTRECORD,
  XLP_FIRST_IS_OVERWRITE_CONTRECORD,
  XLP_LONG_HEADER,
  XLR_RMGR_INFO_MASK,
} from './wal-record-format.ts';

export interface SegmentSummary {
  /** xact_time of the first / last COMMIT or COMMIT PREPARED record (millisecond precision). */
  firstCommitTime?: Date;
  lastCommitTime?: Date;
  /** The same times in microseconds since the Unix epoch, as exact as PostgreSQL keeps them. */
  firstCommitMicros?: bigint;
  lastCommitMicros?: bigint;
  /** Start LSN of the last commit record lying wholly inside the data. */
  lastCommitLsn?: Lsn;
  /** Commit records lying wholly inside the data (one that straddles a segment boundary is not counted). */
  commits: number;
  /**
   * Named restore points (pg_create_restore_point) lying wholly inside the data, in WAL order:
   * the name, the record's start LSN and rp_time (millisecond precision).
   */
  restorePoints: Array<{ name: string; lsn: Lsn; time: Date }>;
  /** Records that start in this segment and lie wholly inside the data. */
  records: number;
  /** Start of the first record that begins in this segment (after the continuation of one from the previous). */
  firstRecordLsn?: Lsn;
  /**
   * End (MAXALIGNed, i.e. where the next record starts) of the last complete record. A record that
   * starts here and continues into the next segment counts as complete when this segment's data
   * is whole, so endLsn may lie in the next segment. After an XLOG_SWITCH record it is the
   * segment's end, as in PostgreSQL's xlogreader. With no complete record: the first record's
   * start, or the segment start.
   */
  endLsn: Lsn;
  /** The segment was closed by an XLOG_SWITCH record (pg_switch_wal, archive_timeout). */
  switched: boolean;
  /** Page header problems, each naming the page's offset in the segment. */
  pageErrors: string[];
  /** Record problems (bad length, prev-link, CRC, undecodable commit or restore point), each naming the record's LSN. */
  recordErrors: string[];
}

export interface SummarizeOptions {
  /** Timeline of the segment (from its file name); every page header must carry it. */
  timeline: number;
  /** LSN of the segment's first byte. */
  startLsn: Lsn;
  segmentSize: number;
  /** Only the first `validBytes` of `segment` are real data (a partial segment); default: all of it. */
  validBytes?: number;
  /**
   * History of `timeline`: pages before a switchpoint may carry the parent's timeline (the first
   * segment of a new timeline starts as a copy of the parent's). Without it, any other is an error.
   */
  history?: readonly TimelineHistoryEntry[];
  /**
   * Check each record's CRC-32C (default false). Costs about half the speed (~400 MB/s instead of
   * ~900 MB/s on WAL of small records); worth it where damage at the source is a concern.
   */
  verifyCrc?: boolean;
}

const MAX_REPORTED_ERRORS = 32;

// Outcomes of walking a byte range across pages.
const WALK_OK = 0;
const WALK_INCOMPLETE = 1; // the data ends inside the range
const WALK_FATAL = 2; // a page header is bad
const WALK_ABANDONED = 3; // the record was abandoned (XLP_FIRST_IS_OVERWRITE_CONTRECORD)
const WALK_NEXT_SEGMENT = 4; // the range continues into the next segment

/**
 * Summarizes a PostgreSQL 14–17 WAL segment.
 *
 * @example
 * const summary = summarizeSegment(await readFile(path), { timeline: 1, startLsn, segmentSize });
 * if (summary.pageErrors.length > 0) throw new Error(summary.pageErrors[0]);
 */
export function summarizeSegment(segment: Buffer, options: SummarizeOptions): SegmentSummary {
  return new SegmentWalker(segment, options).run();
}

class SegmentWalker {
  private readonly buf: Buffer;
  private readonly limit: number;
  private readonly segmentSize: number;
  private readonly startLsn: Lsn;
  private readonly timeline: number;
  private readonly history: readonly TimelineHistoryEntry[] | undefined;
  private readonly verifyCrc: boolean;
  // The LSN of byte `off` is (segHi << 32) | (segLo + off): a segment never crosses a 4 GB
  // boundary, so offsets only touch the low word and the hot loop needs no bigint.
  private readonly segLo: number;
  private readonly segHi: number;
  private pageSize = DEFAULT_WAL_PAGE_SIZE;
  private magic = 0;
  private pageInfo = 0;
  /** Piece list of the last walk: [start0, end0, start1, end1, ...] offsets in `buf`. */
  private readonly pieces: number[] = [];
  private walkEnd = 0;
  private bytesIntoNextSegment = 0;
  private readonly summary: SegmentSummary;
  private tliErrors = 0;

  constructor(segment: Buffer, options: SummarizeOptions) {
    const { timeline, startLsn, segmentSize } = options;
    const usage = (message: string) => new WardenError('WARDEN_E_USAGE', `summarizeSegment: ${message}`);
    if (!isValidSegmentSize(segmentSize)) throw usage(`invalid segment size ${segmentSize}`);
    if (!Number.isInteger(timeline) || timeline < 1 || timeline > 0xffff_ffff)
      throw usage(`invalid timeline ${timeline}`);
    if (typeof startLsn !== 'bigint' || startLsn < 0n || startLsn % BigInt(segmentSize) !== 0n) {
      throw usage(`startLsn ${String(startLsn)} is not the start of a segment`);
    }
    const available = Math.min(segment.length, segmentSize);
    const validBytes = options.validBytes ?? available;
    if (!Number.isInteger(validBytes) || validBytes < 0 || validBytes > available) {
      throw usage(`validBytes ${validBytes} outside 0..${available}`);
    }
    this.buf = segment;
    this.limit = validBytes;
    this.segmentSize = segmentSize;
    this.startLsn = startLsn;
    this.timeline = timeline;
    this.history = options.history;
    this.verifyCrc = options.verifyCrc ?? false;
    this.segLo = Number(startLsn & 0xffff_ffffn);
    this.segHi = Number(startLsn >> 32n);
    this.summary = {
      commits: 0,
      restorePoints: [],
      records: 0,
      endLsn: startLsn,
      switched: false,
      pageErrors: [],
      recordErrors: [],
    };
  }

  run(): SegmentSummary {
    const s = this.summary;
    const firstHeader = this.checkPage(0);
    if (firstHeader <= 0) return s;
    let pos = firstHeader;
    if (this.pageInfo & XLP_FIRST_IS_CONTRECORD) {
      // The tail of a record that began in the previous segment: skip it.
      const status = this.walk(pos, this.buf.readUInt32LE(16));
      if (status !== WALK_OK) return s;
      pos = align(this.walkEnd);
    }
    s.firstRecordLsn = this.lsnAt(pos);
    let endOff = pos;
    let prevStart = -1;
    for (;;) {
      if (pos % this.pageSize === 0) {
        if (pos >= this.limit) break;
        const header = this.checkPage(pos);
        if (header <= 0) break;
        if (this.pageInfo & XLP_FIRST_IS_CONTRECORD) {
          this.pageError(pos, 'XLP_FIRST_IS_CONTRECORD set where a new record begins');
          break;
        }
        pos += header;
      }
      if (pos + 4 > this.limit) break;
      const totalLength = this.buf.readUInt32LE(pos);
      if (totalLength === 0) break; // end of WAL: the zeroed remainder of the segment
      if (totalLength < SIZE_OF_XLOG_RECORD) {
        this.recordError(pos, `invalid xl_tot_len ${totalLength}`);
        break;
      }
      const status = this.walk(pos, totalLength);
      if (status === WALK_INCOMPLETE || status === WALK_FATAL) break;
      if (status === WALK_ABANDONED) {
        // A crash cut this record short; the page starts with an OVERWRITE_CONTRECORD record.
        prevStart = pos;
        pos = this.walkEnd;
        continue;
      }
      if (status === WALK_NEXT_SEGMENT) {
        s.endLsn = this.startLsn + BigInt(this.segmentSize) + BigInt(this.endInNextSegment());
        return s;
      }
      const header = this.recordHeader(pos);
      if (
        prevStart >= 0 &&
        (header.readUInt32LE(8) !== this.segLo + prevStart || header.readUInt32LE(12) !== this.segHi)
      ) {
        this.recordError(
          pos,
          `xl_prev ${formatLsn(header.readBigUInt64LE(8))} does not point to the previous record`,
        );
        break;
      }
      if (this.verifyCrc && !this.crcMatches(header)) {
        this.recordError(pos, 'incorrect CRC-32C');
        break;
      }
      const info = header[16] ?? 0;
      const rmid = header[17] ?? 0;
      s.records++;
      if (rmid === RM_XACT_ID) {
        const op = info & XLOG_XACT_OPMASK;
        if (op === XLOG_XACT_COMMIT || op === XLOG_XACT_COMMIT_PREPARED) this.commit(pos);
      } else if (rmid === RM_XLOG_ID) {
        const op = info & XLR_RMGR_INFO_MASK;
        if (op === XLOG_SWITCH) {
          s.switched = true;
          s.endLsn = this.startLsn + BigInt(this.segmentSize);
          return s;
        }
        if (op === XLOG_RESTORE_POINT) this.restorePoint(pos);
      }
      prevStart = pos;
      endOff = align(this.walkEnd);
      pos = endOff;
      if (pos >= this.segmentSize) break;
    }
    s.endLsn = this.startLsn + BigInt(endOff);
    return s;
  }

  /**
   * Consumes `n` bytes from `start` (inside a page's data area) across page boundaries, checking
   * that each following page continues the record (XLP_FIRST_IS_CONTRECORD with xlp_rem_len equal
   * to the bytes still missing). Fills `pieces` and `walkEnd`.
   */
  private walk(start: number, n: number): number {
    const pieces = this.pieces;
    pieces.length = 0;
    let p = start;
    let left = n;
    for (;;) {
      const pageEnd = p - (p % this.pageSize) + this.pageSize;
      const avail = pageEnd - p;
      if (left <= avail) {
        const end = p + left;
        if (end > this.limit) return WALK_INCOMPLETE;
        pieces.push(p, end);
        this.walkEnd = end;
        return WALK_OK;
      }
      if (pageEnd > this.limit) return WALK_INCOMPLETE;
      pieces.push(p, pageEnd);
      left -= avail;
      if (pageEnd >= this.segmentSize) {
        this.bytesIntoNextSegment = left;
        return WALK_NEXT_SEGMENT;
      }
      const header = this.checkPage(pageEnd);
      if (header < 0) return WALK_FATAL;
      if (header === 0) return WALK_INCOMPLETE;
      if (!(this.pageInfo & XLP_FIRST_IS_CONTRECORD)) {
        if (this.pageInfo & XLP_FIRST_IS_OVERWRITE_CONTRECORD) {
          this.walkEnd = pageEnd + header;
          return WALK_ABANDONED;
        }
        this.pageError(
          pageEnd,
          `XLP_FIRST_IS_CONTRECORD missing; ${left} bytes of the record at ${formatLsn(this.lsnAt(start))} expected`,
        );
        return WALK_FATAL;
      }
      const remLen = this.buf.readUInt32LE(pageEnd + 16);
      if (remLen !== left) {
        this.pageError(pageEnd, `xlp_rem_len ${remLen}, expected ${left}`);
        return WALK_FATAL;
      }
      p = pageEnd + header;
    }
  }

  /**
   * Checks the page header at `off`. Returns its size, 0 when the data ends inside it, or -1 when
   * it is invalid (the error is recorded). Leaves xlp_info in `pageInfo`.
   */
  private checkPage(off: number): number {
    const buf = this.buf;
    const isFirst = off === 0;
    const size = isFirst ? SIZE_OF_LONG_PAGE_HEADER : SIZE_OF_SHORT_PAGE_HEADER;
    if (off + size > this.limit) return 0;
    const magic = buf.readUInt16LE(off);
    if (isFirst) {
      if (!WAL_PAGE_MAGIC.has(magic)) {
        return this.pageError(off, `unknown xlp_magic 0x${hex(magic, 4)} (not PostgreSQL 14-17 WAL)`);
      }
      this.magic = magic;
    } else if (magic !== this.magic) {
      return this.pageError(
        off,
        `xlp_magic 0x${hex(magic, 4)} differs from the segment's 0x${hex(this.magic, 4)}`,
      );
    }
    const info = buf.readUInt16LE(off + 2);
    this.pageInfo = info;
    if (info & ~XLP_ALL_FLAGS) return this.pageError(off, `invalid xlp_info bits 0x${hex(info, 4)}`);
    if (isFirst !== ((info & XLP_LONG_HEADER) !== 0)) {
      return this.pageError(
        off,
        isFirst ? 'first page lacks XLP_LONG_HEADER' : 'XLP_LONG_HEADER on a page inside the segment',
      );
    }
    const pageLo = buf.readUInt32LE(off + 8);
    const pageHi = buf.readUInt32LE(off + 12);
    if (pageLo !== this.segLo + off || pageHi !== this.segHi) {
      const found = (BigInt(pageHi) << 32n) | BigInt(pageLo);
      return this.pageError(off, `xlp_pageaddr ${formatLsn(found)}, expected ${formatLsn(this.lsnAt(off))}`);
    }
    if (isFirst) {
      const segSize = buf.readUInt32LE(32);
      if (segSize !== this.segmentSize) {
        return this.pageError(off, `xlp_seg_size ${segSize}, expected ${this.segmentSize}`);
      }
      const blcksz = buf.readUInt32LE(36);
      if (blcksz < 1024 || blcksz > 65536 || (blcksz & (blcksz - 1)) !== 0) {
        return this.pageError(off, `invalid xlp_xlog_blcksz ${blcksz}`);
      }
      this.pageSize = blcksz;
    }
    const tli = buf.readUInt32LE(off + 4);
    const expected = this.history
      ? timelineOfLsn(this.history, this.timeline, this.lsnAt(off))
      : this.timeline;
    if (tli !== expected) {
      // Not fatal: the page is where it should be, it is only attributed to another timeline.
      this.tliErrors++;
      if (this.tliErrors <= MAX_REPORTED_ERRORS)
        this.pageError(off, `xlp_tli ${tli}, expected timeline ${expected}`);
    }
    return size;
  }

  /** The 24-byte record header at `pos`, gathered from the walked pieces when it spans pages. */
  private recordHeader(pos: number): Buffer {
    if ((this.pieces[1] ?? 0) - pos >= SIZE_OF_XLOG_RECORD)
      return this.buf.subarray(pos, pos + SIZE_OF_XLOG_RECORD);
    return this.gather(SIZE_OF_XLOG_RECORD);
  }

  /** Copies the first `n` bytes of the walked pieces into one buffer. */
  private gather(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (let i = 0; i < this.pieces.length && filled < n; i += 2) {
      const start = this.pieces[i] ?? 0;
      const end = Math.min(this.pieces[i + 1] ?? 0, start + n - filled);
      filled += this.buf.copy(out, filled, start, end);
    }
    return out;
  }

  private crcMatches(header: Buffer): boolean {
    let crc = 0xffffffff;
    let skip = SIZE_OF_XLOG_RECORD; // the header is summed last
    for (let i = 0; i < this.pieces.length; i += 2) {
      let start = this.pieces[i] ?? 0;
      const end = this.pieces[i + 1] ?? 0;
      const skipped = Math.min(skip, end - start);
      start += skipped;
      skip -= skipped;
      if (start < end) crc = crc32cUpdate(crc, this.buf, start, end);
    }
    crc = crc32cUpdate(crc, header, 0, XL_CRC_OFFSET);
    return ~crc >>> 0 === header.readUInt32LE(XL_CRC_OFFSET);
  }

  /** The walked record at `pos` as one contiguous buffer (copied only when it spans pages). */
  private wholeRecord(pos: number): Buffer {
    const total = this.buf.readUInt32LE(pos);
    return this.pieces.length === 2 ? this.buf.subarray(pos, pos + total) : this.gather(total);
  }

  private commit(pos: number): void {
    const s = this.summary;
    const record = this.wholeRecord(pos);
    const main = findMainData(record, this.magic);
    if (typeof main === 'string' || main.length < 8) {
      this.recordError(
        pos,
        `undecodable commit record: ${typeof main === 'string' ? main : 'main data too short'}`,
      );
      return;
    }
    const micros = record.readBigInt64LE(main.offset) + POSTGRES_EPOCH_MICROS;
    const time = new Date(Number(micros / 1000n));
    if (s.commits === 0) {
      s.firstCommitTime = time;
      s.firstCommitMicros = micros;
    }
    s.lastCommitTime = time;
    s.lastCommitMicros = micros;
    s.lastCommitLsn = this.lsnAt(pos);
    s.commits++;
  }

  private restorePoint(pos: number): void {
    const record = this.wholeRecord(pos);
    const main = findMainData(record, this.magic);
    if (typeof main === 'string' || main.length < SIZE_OF_RESTORE_POINT) {
      this.recordError(
        pos,
        `undecodable restore point record: ${typeof main === 'string' ? main : 'main data too short'}`,
      );
      return;
    }
    const micros = record.readBigInt64LE(main.offset) + POSTGRES_EPOCH_MICROS;
    const nameBytes = record.subarray(main.offset + 8, main.offset + SIZE_OF_RESTORE_POINT);
    const nul = nameBytes.indexOf(0);
    this.summary.restorePoints.push({
      name: nameBytes.toString('utf8', 0, nul < 0 ? nameBytes.length : nul),
      lsn: this.lsnAt(pos),
      time: new Date(Number(micros / 1000n)),
    });
  }

  /** Offset in the next segment where the record that ran off this one ends (MAXALIGNed). */
  private endInNextSegment(): number {
    let left = this.bytesIntoNextSegment;
    for (let off = 0; ; off += this.pageSize) {
      const header = off % this.segmentSize === 0 ? SIZE_OF_LONG_PAGE_HEADER : SIZE_OF_SHORT_PAGE_HEADER;
      const usable = this.pageSize - header;
      if (left <= usable) return align(off + header + left);
      left -= usable;
    }
  }

  private lsnAt(off: number): Lsn {
    return this.startLsn + BigInt(off);
  }

  private pageError(off: number, message: string): -1 {
    this.summary.pageErrors.push(`page at offset ${off} (LSN ${formatLsn(this.lsnAt(off))}): ${message}`);
    return -1;
  }

  private recordError(off: number, message: string): void {
    if (this.summary.recordErrors.length < MAX_REPORTED_ERRORS) {
      this.summary.recordErrors.push(`record at ${formatLsn(this.lsnAt(off))} (offset ${off}): ${message}`);
    }
  }
}

function align(n: number): number {
  return Math.ceil(n / MAXALIGN) * MAXALIGN;
}

function hex(n: number, width: number): string {
  return n.toString(16).toUpperCase().padStart(width, '0');
}
