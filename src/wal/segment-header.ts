import { WardenError } from '../errors.ts';
import { isValidSegmentSize, parseSegmentName, type Lsn } from './lsn.ts';
import { WAL_PAGE_MAGIC, XLP_LONG_HEADER } from './wal-record-format.ts';

/** What a WAL segment's first page (XLogLongPageHeaderData) says about the file. */
export interface SegmentHeader {
  /** The major version from xlp_magic (`15`): as much of `server_version` as a segment tells. */
  serverVersion: string;
  timeline: number;
  pageAddress: Lsn;
  /** The cluster's system identifier (xlp_sysid), as a decimal string like IDENTIFY_SYSTEM's. */
  systemId: string;
  segmentSize: number;
}

/**
 * Reads and checks the long page header a segment file starts with, against the file's name: a
 * file handed to `warden wal push` is taken for what its header says only when the header, the
 * name and the file size agree (WARDEN_E_WAL_FORMAT otherwise). Layout (xlog_internal.h):
 * xlp_magic u16 @0, xlp_info u16 @2, xlp_tli u32 @4, xlp_pageaddr u64 @8, xlp_sysid u64 @24,
 * xlp_seg_size u32 @32, all little-endian on the platforms PostgreSQL runs on here.
 */
export function readSegmentHeader(data: Buffer, name: string): SegmentHeader {
  const fail = (why: string) =>
    new WardenError('WARDEN_E_WAL_FORMAT', `${name} is not a WAL segment PostgreSQL wrote: ${why}`, {
      details: { file: name },
    });
  if (data.length < 40) throw fail(`only ${data.length} bytes`);
  const magic = data.readUInt16LE(0);
  const serverVersion = WAL_PAGE_MAGIC.get(magic)?.replace(/^PostgreSQL /, '');
  if (!serverVersion) throw fail(`unknown xlp_magic 0x${magic.toString(16)}`);
  if ((data.readUInt16LE(2) & XLP_LONG_HEADER) === 0) throw fail('the first page has no long header');
  const segmentSize = data.readUInt32LE(32);
  if (!isValidSegmentSize(segmentSize)) throw fail(`invalid xlp_seg_size ${segmentSize}`);
  if (data.length !== segmentSize) throw fail(`${data.length} bytes, the header says ${segmentSize}`);
  const parsed = parseSegmentName(name, segmentSize);
  if (!parsed) throw fail('the name is not a segment name');
  const header: SegmentHeader = {
    serverVersion,
    timeline: data.readUInt32LE(4),
    pageAddress: data.readBigUInt64LE(8),
    systemId: data.readBigUInt64LE(24).toString(),
    segmentSize,
  };
  if (header.pageAddress !== parsed.startLsn) throw fail('its first page belongs to another segment');
  // A segment's first page may still carry the timeline it was begun on (the switch segment of a
  // new timeline starts with the old timeline's pages): it must not be newer than the name's.
  if (header.timeline === 0 || header.timeline > parsed.timeline)
    throw fail(`xlp_tli ${header.timeline} does not fit timeline ${parsed.timeline} of its name`);
  return header;
}
