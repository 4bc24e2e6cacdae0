/**
 * Byte layouts of PostgreSQL WAL pages and records (PostgreSQL 14–17), as defined in
 * src/include/access/xlog_internal.h and src/include/access/xlogrecord.h, and the record
 * decoding rules of `DecodeXLogRecord` in src/backend/access/transam/xlogreader.c.
 */

/** `XLOG_PAGE_MAGIC` per major version: it changes whenever the WAL format does. */
export const WAL_PAGE_MAGIC: ReadonlyMap<number, string> = new Map([
  [0xd10d, 'PostgreSQL 14'],
  [0xd110, 'PostgreSQL 15'],
  [0xd113, 'PostgreSQL 16'],
  [0xd116, 'PostgreSQL 17'],
]);

/** MAXALIGN on the 64-bit platforms PostgreSQL runs on. */
export const MAXALIGN = 8;
/** Default `XLOG_BLCKSZ`; the real one is in every segment's long page header. */
export const DEFAULT_WAL_PAGE_SIZE = 8192;

// XLogPageHeaderData: xlp_magic u16 @0, xlp_info u16 @2, xlp_tli u32 @4, xlp_pageaddr u64 @8,
// xlp_rem_len u32 @16, padded to 24. XLogLongPageHeaderData adds xlp_sysid u64 @24,
// xlp_seg_size u32 @32, xlp_xlog_blcksz u32 @36: 40 bytes.
export const SIZE_OF_SHORT_PAGE_HEADER = 24;
export const SIZE_OF_LONG_PAGE_HEADER = 40;
export const XLP_FIRST_IS_CONTRECORD = 0x0001;
export const XLP_LONG_HEADER = 0x0002;
export const XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008;
export const XLP_ALL_FLAGS = 0x000f;

// XLogRecord: xl_tot_len u32 @0, xl_xid u32 @4, xl_prev u64 @8, xl_info u8 @16, xl_rmid u8 @17,
// 2 bytes padding, xl_crc u32 @20. The CRC covers the record after the header, then the header
// up to xl_crc.
export const SIZE_OF_XLOG_RECORD = 24;
export const XL_CRC_OFFSET = 20;

export const RM_XLOG_ID = 0;
export const RM_XACT_ID = 1;
export const XLOG_SWITCH = 0x40;
export const XLOG_RESTORE_POINT = 0x70;
/**
 * xl_restore_point (xlog_internal.h): TimestampTz rp_time @0, char rp_name[MAXFNAMELEN = 64] @8,
 * NUL-terminated: 72 bytes of main data.
 */
export const SIZE_OF_RESTORE_POINT = 8 + 64;
export const XLR_RMGR_INFO_MASK = 0xf0;
export const XLOG_XACT_OPMASK = 0x70;
export const XLOG_XACT_COMMIT = 0x00;
export const XLOG_XACT_COMMIT_PREPARED = 0x30;

const XLR_MAX_BLOCK_ID = 32;
const XLR_BLOCK_ID_DATA_SHORT = 255;
const XLR_BLOCK_ID_DATA_LONG = 254;
const XLR_BLOCK_ID_ORIGIN = 253;
const XLR_BLOCK_ID_TOPLEVEL_XID = 252;
const BKPBLOCK_HAS_IMAGE = 0x10;
const BKPBLOCK_SAME_REL = 0x80;
const BKPIMAGE_HAS_HOLE = 0x01;
/** PostgreSQL 15+: BKPIMAGE_COMPRESS_PGLZ | _LZ4 | _ZSTD. */
const BKPIMAGE_COMPRESSED_15 = 0x04 | 0x08 | 0x10;
/** PostgreSQL 14: BKPIMAGE_IS_COMPRESSED. */
const BKPIMAGE_COMPRESSED_14 = 0x02;
const SIZE_OF_RELFILENODE = 12;

/** Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 00:00:00 UTC). */
export const POSTGRES_EPOCH_MICROS = 946_684_800_000_000n;

/**
 * Locates the main data of a decoded (contiguous) record the way `DecodeXLogRecord` does: walks
 * the block headers, adds up block data and images, and checks that the lengths add up to the
 * record. Returns the main data's offset and length, or a message saying what is malformed.
 */
export function findMainData(record: Buffer, magic: number): { offset: number; length: number } | string {
  const total = record.readUInt32LE(0);
  if (total > record.length || total < SIZE_OF_XLOG_RECORD) return `xl_tot_len ${total} out of range`;
  const compressedMask = magic === 0xd10d ? BKPIMAGE_COMPRESSED_14 : BKPIMAGE_COMPRESSED_15;
  let at = SIZE_OF_XLOG_RECORD;
  let remaining = total - SIZE_OF_XLOG_RECORD;
  let dataTotal = 0;
  let mainLength = 0;
  const need = (n: number): boolean => {
    if (remaining < n) return false;
    remaining -= n;
    return true;
  };
  while (remaining > dataTotal) {
    if (!need(1)) return 'record header truncated';
    const blockId = record[at++] ?? 0;
    if (blockId === XLR_BLOCK_ID_DATA_SHORT) {
      if (!need(1)) return 'main data header truncated';
      mainLength = record[at] ?? 0;
      dataTotal += mainLength;
      break; // by convention the main data header comes last
    } else if (blockId === XLR_BLOCK_ID_DATA_LONG) {
      if (!need(4)) return 'main data header truncated';
      mainLength = record.readUInt32LE(at);
      dataTotal += mainLength;
      break;
    } else if (blockId === XLR_BLOCK_ID_ORIGIN) {
      if (!need(2)) return 'origin truncated';
      at += 2;
    } else if (blockId === XLR_BLOCK_ID_TOPLEVEL_XID) {
      if (!need(4)) return 'top-level xid truncated';
      at += 4;
    } else if (blockId <= XLR_MAX_BLOCK_ID) {
      if (!need(3)) return `block ${blockId} header truncated`;
      const forkFlags = record[at] ?? 0;
      dataTotal += record.readUInt16LE(at + 1);
      at += 3;
      if (forkFlags & BKPBLOCK_HAS_IMAGE) {
        if (!need(5)) return `block ${blockId} image header truncated`;
        const imageLength = record.readUInt16LE(at);
        const bimgInfo = record[at + 4] ?? 0;
        at += 5;
        if (bimgInfo & compressedMask && bimgInfo & BKPIMAGE_HAS_HOLE) {
          if (!need(2)) return `block ${blockId} compress header truncated`;
          at += 2;
        }
        dataTotal += imageLength;
      }
      const locator = forkFlags & BKPBLOCK_SAME_REL ? 4 : SIZE_OF_RELFILENODE + 4;
      if (!need(locator)) return `block ${blockId} location truncated`;
      at += locator;
    } else {
      return `invalid block_id ${blockId}`;
    }
  }
  if (remaining !== dataTotal)
    return `block and main data lengths (${dataTotal}) do not fill the record (${remaining})`;
  return { offset: total - mainLength, length: mainLength };
}

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), slice-by-8, as PostgreSQL's pg_crc32c.
const CRC_TABLES = (() => {
  const tables = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    tables[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = tables[n] ?? 0;
    for (let t = 1; t < 8; t++) {
      c = (tables[c & 0xff] ?? 0) ^ (c >>> 8);
      tables[t * 256 + n] = c >>> 0;
    }
  }
  return tables;
})();

/** Continues a CRC-32C over `buf[start, end)`. Start with 0xFFFFFFFF; finish with `~crc >>> 0`. */
export function crc32cUpdate(crc: number, buf: Uint8Array, start: number, end: number): number {
  const t = CRC_TABLES;
  let c = crc >>> 0;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const lo =
      c ^
      ((buf[i] as number) |
        ((buf[i + 1] as number) << 8) |
        ((buf[i + 2] as number) << 16) |
        ((buf[i + 3] as number) << 24));
    c =
      (t[1792 + (lo & 0xff)] as number) ^
      (t[1536 + ((lo >>> 8) & 0xff)] as number) ^
      (t[1280 + ((lo >>> 16) & 0xff)] as number) ^
      (t[1024 + (lo >>> 24)] as number) ^
      (t[768 + (buf[i + 4] as number)] as number) ^
      (t[512 + (buf[i + 5] as number)] as number) ^
      (t[256 + (buf[i + 6] as number)] as number) ^
      (t[buf[i + 7] as number] as number);
  }
  for (; i < end; i++) c = (t[(c ^ (buf[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return c >>> 0;
}

/** CRC-32C of a whole buffer. */
export function crc32c(buf: Uint8Array): number {
  return ~crc32cUpdate(0xffffffff, buf, 0, buf.length) >>> 0;
}
