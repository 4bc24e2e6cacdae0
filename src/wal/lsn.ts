/**
 * Log sequence numbers and WAL segment file names, byte-compatible with PostgreSQL's
 * `pg_lsn` text form and `XLogFileName` / `XLogFromFileName` (src/include/access/xlog_internal.h).
 */
import { WardenError } from '../errors.ts';

/** A WAL position: a byte offset into the cluster's WAL stream (PostgreSQL's `XLogRecPtr`, u64). */
export type Lsn = bigint;

/** `InvalidXLogRecPtr`. */
export const INVALID_LSN: Lsn = 0n;
export const MAX_LSN: Lsn = 0xffff_ffff_ffff_ffffn;

const MIN_SEGMENT_SIZE = 1024 * 1024;
const MAX_SEGMENT_SIZE = 1024 * 1024 * 1024;

const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;
const SEGMENT_NAME_PATTERN = /^[0-9A-F]{24}$/;

/**
 * Parses PostgreSQL's text form of an LSN (`16/B374D848`; hex is case-insensitive, each half
 * at most 8 digits, as `pg_lsn_in` accepts). Throws `WARDEN_E_USAGE` on anything else.
 *
 * @example parseLsn('16/B374D848') // 0x16B374D848n
 */
export function parseLsn(text: string): Lsn {
  const match = LSN_PATTERN.exec(text);
  if (!match) {
    throw new WardenError(
      'WARDEN_E_USAGE',
      `invalid LSN "${text}": expected hexadecimal X/Y such as 16/B374D848`,
      {
        details: { lsn: text },
      },
    );
  }
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/**
 * Formats an LSN like PostgreSQL does (`%X/%X`: uppercase hex, no padding).
 *
 * @example formatLsn(0x16B374D848n) // '16/B374D848'
 */
export function formatLsn(lsn: Lsn): string {
  assertLsn(lsn);
  const hi = lsn >> 32n;
  const lo = lsn & 0xffff_ffffn;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** True for a valid `wal_segment_size`: a power of two from 1 MB to 1 GB. */
export function isValidSegmentSize(segmentSize: number): boolean {
  return (
    Number.isInteger(segmentSize) &&
    segmentSize >= MIN_SEGMENT_SIZE &&
    segmentSize <= MAX_SEGMENT_SIZE &&
    (segmentSize & (segmentSize - 1)) === 0
  );
}

/** Number of the segment holding `lsn` (PostgreSQL's `XLByteToSeg`). */
export function segmentNumber(lsn: Lsn, segmentSize: number): bigint {
  assertLsn(lsn);
  return lsn / segmentSizeBig(segmentSize);
}

/** LSN of the first byte of the segment holding `lsn`. */
export function segmentStart(lsn: Lsn, segmentSize: number): Lsn {
  assertLsn(lsn);
  const size = segmentSizeBig(segmentSize);
  return lsn - (lsn % size);
}

/**
 * The file name of the segment holding `lsn` on `timeline` (`XLogFileName`): 24 uppercase hex
 * digits, timeline, then the segment number split into "log id" and segment within it.
 *
 * @example segmentName(1, parseLsn('0/3000060'), 16 * 1024 * 1024) // '000000010000000000000003'
 */
export function segmentName(timeline: number, lsn: Lsn, segmentSize: number): string {
  assertTimeline(timeline);
  const segNo = segmentNumber(lsn, segmentSize);
  const perXLogId = 0x1_0000_0000n / BigInt(segmentSize);
  return hex8(BigInt(timeline)) + hex8(segNo / perXLogId) + hex8(segNo % perXLogId);
}

/**
 * Inverse of {@link segmentName}: the timeline and start LSN of a segment file name, or
 * `undefined` when `name` is not a segment name for this segment size (PostgreSQL's
 * `IsXLogFileName` accepts uppercase hex only; so does this).
 */
export function parseSegmentName(
  name: string,
  segmentSize: number,
): { timeline: number; startLsn: Lsn } | undefined {
  const size = segmentSizeBig(segmentSize);
  if (!SEGMENT_NAME_PATTERN.test(name)) return undefined;
  const timeline = Number.parseInt(name.slice(0, 8), 16);
  const logId = BigInt(`0x${name.slice(8, 16)}`);
  const segInLog = BigInt(`0x${name.slice(16, 24)}`);
  const perXLogId = 0x1_0000_0000n / size;
  if (timeline === 0 || segInLog >= perXLogId) return undefined;
  return { timeline, startLsn: (logId * perXLogId + segInLog) * size };
}

/**
 * Parses the text of `SHOW wal_segment_size` (`16MB`, `1GB`, `512kB`, or plain bytes) into bytes.
 * Throws `WARDEN_E_USAGE` unless the result is a valid segment size (power of two, 1 MB–1 GB).
 */
export function parseSegmentSize(show: string): number {
  const match = /^\s*(\d+)\s*(B|kB|MB|GB)?\s*$/.exec(show);
  const unit = match?.[2] ?? 'B';
  const factor = unit === 'GB' ? 1024 ** 3 : unit === 'MB' ? 1024 ** 2 : unit === 'kB' ? 1024 : 1;
  const bytes = match ? Number(match[1]) * factor : Number.NaN;
  if (!isValidSegmentSize(bytes)) {
    throw new WardenError(
      'WARDEN_E_USAGE',
      `invalid wal_segment_size "${show}": expected a power of two from 1MB to 1GB`,
      { details: { walSegmentSize: show } },
    );
  }
  return bytes;
}

function hex8(value: bigint): string {
  return value.toString(16).toUpperCase().padStart(8, '0');
}

function segmentSizeBig(segmentSize: number): bigint {
  if (!isValidSegmentSize(segmentSize)) {
    throw new WardenError('WARDEN_E_USAGE', `invalid WAL segment size ${segmentSize}`, {
      details: { segmentSize },
    });
  }
  return BigInt(segmentSize);
}

function assertLsn(lsn: Lsn): void {
  if (typeof lsn !== 'bigint' || lsn < 0n || lsn > MAX_LSN) {
    throw new WardenError('WARDEN_E_USAGE', `invalid LSN ${String(lsn)}: not an unsigned 64-bit integer`, {
      details: { lsn: String(lsn) },
    });
  }
}

function assertTimeline(timeline: number): void {
  if (!Number.isInteger(timeline) || timeline < 1 || timeline > 0xffff_ffff) {
    throw new WardenError('WARDEN_E_USAGE', `invalid timeline ${timeline}: expected 1 to 4294967295`, {
      details: { timeline },
    });
  }
}
