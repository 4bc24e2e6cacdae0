import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { WardenError } from '../errors.ts';
import { buildHeader, openHeader, parseHeader } from '../pipeline/encryption/age-header.ts';
import type { AgeIdentity, AgeRecipient } from '../pipeline/encryption/age-keys.ts';
import type { TrustPolicy } from '../pipeline/signing/record-signature.ts';
import {
  assertTrustedPartial,
  FRAME_SIGNATURE,
  preambleDigest,
  signFrame,
  type PartialSigner,
} from './partial-signature.ts';

/**
 * The partial WAL segment's on-disk format: append-only frames, one per flush, so every byte of
 * the object is covered before its position is reported to PostgreSQL.
 *
 *   `warden-partial-wal/v1 sealed[ signed <key id>]\n` | header length (u32 BE) | 4 check bytes |
 *       age header (the file key wrapped to the recipients, with its MAC)
 *   `warden-partial-wal/v1 checksummed[ signed <key id>]\n`              (unencrypted repository)
 *   then frames: header (20 bytes) | body [| Ed25519 signature (64 bytes), when signed]
 *
 * Frame header: plaintext length (u32 BE, > 0), frame index (u32 BE, from 0), segment offset of
 * the frame's first byte (u64 BE), and the first 4 bytes of SHA-256 over those 16 bytes (so a
 * changed length is told from a frame cut short by a crash). Body, sealed: ChaCha20-Poly1305 of
 * the bytes, key HKDF-SHA256(file key, salt = segment name, "warden-partial-wal/v1"), nonce =
 * frame index, AAD = segment name + frame header — so a frame cannot be moved, dropped (the next
 * one's index and offset no longer follow), duplicated or carried to another segment undetected.
 * Body, checksummed: the bytes, then SHA-256 over segment name + frame header + bytes.
 *
 * With ` signed wardensig1...` in the format line every frame ends with the writer's signature
 * (partial-signature.ts): sealing and checksums keep out damage, the signature keeps out anyone
 * without the signing key. Lines without it (unsigned) are still read.
 *
 * The check bytes (first 4 of SHA-256 over the format line and the length) tell a preamble cut
 * short by a crash from a damaged one. Only the last frame may be incomplete (a crash during its
 * write); readers stop before it.
 */
export const PARTIAL_MAGIC = 'warden-partial-wal/v1';
export type PartialFormat = 'sealed' | 'checksummed';

/** Longer than any format line (a signing key id is 68 characters). */
const MAX_LINE = 160;
const LINE = /^warden-partial-wal\/v1 (sealed|checksummed)(?: signed (wardensig1[a-z0-9]+))?$/;

function formatLine(format: PartialFormat, signer?: string): Buffer {
  return Buffer.from(`${PARTIAL_MAGIC} ${format}${signer ? ` signed ${signer}` : ''}\n`);
}
const TAG = 16;
const DIGEST = 32;
export const FRAME_HEADER = 20;
const KEY_INFO = 'warden-partial-wal/v1';

/** What is wrong with a partial segment, as named in `details.problem`. */
export type PartialProblem =
  | 'partial-unframed'
  | 'partial-bad-header'
  | 'partial-frame-header-damaged'
  | 'partial-frames-out-of-order'
  | 'partial-frame-beyond-segment'
  | 'partial-frame-authentication-failed'
  | 'partial-frame-checksum-mismatch';

export function partialCorrupt(
  problem: PartialProblem,
  message: string,
  object: string,
  extra: Record<string, unknown> = {},
): WardenError {
  return new WardenError('WARDEN_E_REPO_CORRUPT', `partial WAL segment ${object}: ${message}`, {
    hint: 'The stored bytes were changed: restore to a point before this segment, or from another repository copy. A restarted WAL stream restreams the segment from its start while the server still has it.',
    details: { object, problem, ...extra },
  });
}

function frameHeader(length: number, index: number, offset: number): Buffer {
  const header = Buffer.alloc(FRAME_HEADER);
  header.writeUInt32BE(length, 0);
  header.writeUInt32BE(index, 4);
  header.writeBigUInt64BE(BigInt(offset), 8);
  createHash('sha256').update(header.subarray(0, 16)).digest().copy(header, 16, 0, 4);
  return header;
}

/** The format line, the age header's length and the check bytes over both. */
function sealedLength(line: Buffer, length: number): Buffer {
  const out = Buffer.alloc(line.length + 8);
  line.copy(out);
  out.writeUInt32BE(length, line.length);
  createHash('sha256')
    .update(out.subarray(0, line.length + 4))
    .digest()
    .copy(out, line.length + 4, 0, 4);
  return out;
}

function frameNonce(index: number): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32BE(index, 8);
  return nonce;
}

/**
 * The file key is random per file (a restream starts a new file), so no stored salt is needed —
 * and none is stored that nothing would authenticate before the first frame.
 */
function frameKey(fileKey: Buffer, segment: string): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, Buffer.from(segment), KEY_INFO, 32));
}

function frameDigest(segment: string, header: Buffer, data: Buffer): Buffer {
  return createHash('sha256').update(segment).update(header).update(data).digest();
}

/**
 * Writes one partial segment: `preamble` first, then `frame()` for the bytes of each flush.
 * With recipients the frames are sealed (one key wrap per segment, none per frame); with a
 * signer each frame is signed (one signature per flush).
 */
export class PartialWriter {
  private index = 0;
  private offset = 0;
  private readonly preambleHash: Buffer;

  private constructor(
    private readonly segment: string,
    readonly preamble: Buffer,
    private readonly key: Buffer | undefined,
    private readonly signer: PartialSigner | undefined,
  ) {
    this.preambleHash = preambleDigest(preamble);
  }

  static async create(
    segment: string,
    recipients?: readonly AgeRecipient[],
    signer?: PartialSigner,
  ): Promise<PartialWriter> {
    if (!recipients?.length)
      return new PartialWriter(segment, formatLine('checksummed', signer?.key.id), undefined, signer);
    const fileKey = randomBytes(16);
    const header = await buildHeader(recipients, fileKey);
    const preamble = Buffer.concat([
      sealedLength(formatLine('sealed', signer?.key.id), header.length),
      header,
    ]);
    return new PartialWriter(segment, preamble, frameKey(fileKey, segment), signer);
  }

  get format(): PartialFormat {
    return this.key ? 'sealed' : 'checksummed';
  }

  /** The frame holding `data`, the segment's next bytes. */
  frame(data: Buffer): Buffer {
    return Buffer.concat(this.framePieces(data));
  }

  /**
   * The same frame as its pieces in order (header, body, checksum or tag, signature), for a
   * writer that appends them one after another: a checksummed body is `data` itself, not a copy.
   */
  framePieces(data: Buffer): Buffer[] {
    const header = frameHeader(data.length, this.index, this.offset);
    let body: Buffer[];
    if (this.key) {
      const cipher = createCipheriv('chacha20-poly1305', this.key, frameNonce(this.index), {
        authTagLength: TAG,
      });
      cipher.setAAD(Buffer.concat([Buffer.from(this.segment), header]), { plaintextLength: data.length });
      body = [cipher.update(data), cipher.final(), cipher.getAuthTag()];
    } else {
      body = [data, frameDigest(this.segment, header, data)];
    }
    if (this.signer) body.push(signFrame(this.signer, this.segment, this.preambleHash, header, body));
    this.index += 1;
    this.offset += data.length;
    return [header, ...body];
  }
}

/** A partial segment's layout, read without any key. */
export interface PartialLayout {
  /** `raw`: no framing (written by an earlier Warden): plaintext WAL that nothing checks. */
  format: PartialFormat | 'raw';
  /** The signing key id its format line names (absent: unsigned). */
  signer?: string;
  /** Bytes after each frame's data: tag or checksum, plus the signature when signed. */
  overhead: number;
  /** Bytes of WAL in complete frames (for `raw`, the object's size). */
  validBytes: number;
  /** Where the frames start in the object (after the preamble). */
  framesAt: number;
  frames: Array<{ index: number; offset: number; length: number; at: number }>;
  /** Bytes after the last complete frame: a frame cut short by a crash, ignored. */
  tornBytes: number;
}

/**
 * An unframed partial (Warden before the framed format) starts with a WAL long page header:
 * magic 0xD0xx/0xD1xx (little-endian) and the XLP_LONG_HEADER flag. Anything else that is not
 * framed is damage, not WAL.
 */
function looksLikeWal(data: Buffer): boolean {
  return data.length >= 4 && (data[1] === 0xd0 || data[1] === 0xd1) && (data[2]! & 0x02) !== 0;
}

function startsWith(data: Buffer, prefix: Buffer): boolean {
  return data.length >= prefix.length && data.subarray(0, prefix.length).equals(prefix);
}

/**
 * Walks a partial segment's frames, checking what needs no key: the preamble, each frame header's
 * check bytes, indexes and offsets in sequence, nothing past the segment's end. Throws
 * WARDEN_E_REPO_CORRUPT (`details.problem`) when they are wrong.
 */
export function scanPartial(data: Buffer, object: string, segmentSize: number): PartialLayout {
  let format: PartialFormat;
  let signer: string | undefined;
  let at: number;
  const lineEnd = data.subarray(0, MAX_LINE).indexOf(0x0a);
  const match = lineEnd < 0 ? null : LINE.exec(data.toString('latin1', 0, lineEnd));
  if (match) {
    format = match[1] as PartialFormat;
    signer = match[2];
    at = lineEnd + 1;
  } else if (lineEnd < 0 && isTornLine(data)) {
    // A preamble cut short (the receiver died before its first sync) holds no WAL yet.
    return tornLayout('checksummed', data.length);
  } else if (looksLikeWal(data)) {
    return {
      format: 'raw',
      overhead: 0,
      validBytes: Math.min(data.length, segmentSize),
      framesAt: 0,
      frames: [],
      tornBytes: 0,
    };
  } else {
    throw partialCorrupt(
      'partial-bad-header',
      'it starts with neither a format line nor a WAL page header',
      object,
    );
  }
  if (format === 'sealed') {
    const line = data.subarray(0, at);
    if (data.length < at + 8) return tornLayout(format, data.length, signer);
    const length = data.readUInt32BE(at);
    if (!sealedLength(line, length).equals(data.subarray(0, at + 8)))
      throw partialCorrupt('partial-bad-header', 'its header length is damaged', object);
    const headerAt = at + 8;
    if (data.length < headerAt + length) return tornLayout(format, data.length, signer);
    let header: ReturnType<typeof parseHeader>;
    try {
      header = parseHeader(data.subarray(headerAt, headerAt + length), object);
    } catch (cause) {
      throw partialCorrupt(
        'partial-bad-header',
        `its age header is damaged: ${(cause as Error).message}`,
        object,
      );
    }
    if (header?.length !== length)
      throw partialCorrupt('partial-bad-header', 'its age header does not have its recorded length', object);
    at = headerAt + length;
  }
  const framesAt = at;
  const overhead = (format === 'sealed' ? TAG : DIGEST) + (signer ? FRAME_SIGNATURE : 0);
  const frames: PartialLayout['frames'] = [];
  let offset = 0;
  while (data.length - at >= FRAME_HEADER) {
    const header = data.subarray(at, at + FRAME_HEADER);
    const check = createHash('sha256').update(header.subarray(0, 16)).digest().subarray(0, 4);
    if (!check.equals(header.subarray(16, 20)))
      throw partialCorrupt(
        'partial-frame-header-damaged',
        `frame ${frames.length} has a damaged header`,
        object,
        {
          frame: frames.length,
          at,
        },
      );
    const length = header.readUInt32BE(0);
    const index = header.readUInt32BE(4);
    const frameOffset = Number(header.readBigUInt64BE(8));
    if (index !== frames.length || frameOffset !== offset || length === 0)
      throw partialCorrupt(
        'partial-frames-out-of-order',
        `frame ${frames.length} is frame ${index} at segment offset ${frameOffset}, expected offset ${offset} (frames moved, dropped or repeated)`,
        object,
        { frame: frames.length, foundFrame: index, at },
      );
    if (offset + length > segmentSize)
      throw partialCorrupt(
        'partial-frame-beyond-segment',
        `frame ${index} reaches past the segment's end`,
        object,
        {
          frame: index,
          at,
        },
      );
    if (data.length - at < FRAME_HEADER + length + overhead) break;
    frames.push({ index, offset, length, at });
    at += FRAME_HEADER + length + overhead;
    offset += length;
  }
  return {
    format,
    ...(signer ? { signer } : {}),
    overhead,
    validBytes: offset,
    framesAt,
    frames,
    tornBytes: data.length - at,
  };
}

/** Start of a format line not yet ended: the magic so far, or the magic and a line being written. */
function isTornLine(data: Buffer): boolean {
  const magic = Buffer.from(`${PARTIAL_MAGIC} `);
  if (data.length <= magic.length) return magic.subarray(0, data.length).equals(data);
  return startsWith(data, magic) && data.length < MAX_LINE && /^[a-z0-9 /.-]*$/.test(data.toString('latin1'));
}

function tornLayout(format: PartialFormat, size: number, signer?: string): PartialLayout {
  return {
    format,
    ...(signer ? { signer } : {}),
    overhead: 0,
    validBytes: 0,
    framesAt: size,
    frames: [],
    tornBytes: size,
  };
}

export interface OpenedPartial {
  format: PartialLayout['format'];
  /** The WAL bytes of the complete frames (`validBytes` long). */
  wal: Buffer;
  validBytes: number;
  tornBytes: number;
}

/**
 * Reads a partial segment back: every frame authenticated (sealed, with the identities) or
 * checksummed before any of its bytes are returned. Errors: WARDEN_E_REPO_CORRUPT with
 * `details.problem`; a sealed one without a fitting identity, WARDEN_E_KEY_MISSING / _MISMATCH.
 */
export async function openPartial(
  data: Buffer,
  options: {
    object: string;
    segment: string;
    segmentSize: number;
    identities?: readonly AgeIdentity[];
    /** Open (and MAC-check) the age header even when no frame needs the key (verify). */
    checkHeader?: boolean;
    /**
     * With a trust set, every frame must be signed by a trusted key (an unsigned partial only
     * under allowUnsigned), checked before any frame is opened; `systemId` is the repository's.
     */
    trust?: { policy: TrustPolicy; systemId: string };
  },
): Promise<OpenedPartial> {
  const { object, segment } = options;
  const layout = scanPartial(data, object, options.segmentSize);
  if (options.trust)
    assertTrustedPartial(
      data,
      layout,
      { object, segment, systemId: options.trust.systemId },
      options.trust.policy,
    );
  if (layout.format === 'raw') {
    const wal = Buffer.from(data.subarray(0, layout.validBytes));
    return { format: 'raw', wal, validBytes: layout.validBytes, tornBytes: 0 };
  }
  let key: Buffer | undefined;
  // A complete preamble leaves fewer torn bytes than the object has (a cut one leaves all of them).
  const preamble = layout.tornBytes < data.length;
  if (layout.format === 'sealed' && (layout.frames.length > 0 || (options.checkHeader && preamble))) {
    const lineLength = data.indexOf(0x0a) + 1;
    const headerAt = lineLength + 8;
    const length = data.readUInt32BE(lineLength);
    const header = parseHeader(data.subarray(headerAt, headerAt + length), object)!;
    const fileKey = await openHeader(header, options.identities ?? [], object);
    key = frameKey(fileKey, segment);
  }
  const wal = Buffer.alloc(layout.validBytes);
  for (const frame of layout.frames) {
    const header = data.subarray(frame.at, frame.at + FRAME_HEADER);
    const bodyAt = frame.at + FRAME_HEADER;
    const body = data.subarray(bodyAt, bodyAt + frame.length);
    if (key) {
      const decipher = createDecipheriv('chacha20-poly1305', key, frameNonce(frame.index), {
        authTagLength: TAG,
      });
      decipher.setAAD(Buffer.concat([Buffer.from(segment), header]), { plaintextLength: frame.length });
      decipher.setAuthTag(data.subarray(bodyAt + frame.length, bodyAt + frame.length + TAG));
      const plain = decipher.update(body);
      try {
        decipher.final();
      } catch {
        throw partialCorrupt(
          'partial-frame-authentication-failed',
          `frame ${frame.index} fails authentication (bytes changed)`,
          object,
          { frame: frame.index, at: frame.at },
        );
      }
      plain.copy(wal, frame.offset);
    } else {
      const digest = data.subarray(bodyAt + frame.length, bodyAt + frame.length + DIGEST);
      if (!frameDigest(segment, header, body).equals(digest))
        throw partialCorrupt(
          'partial-frame-checksum-mismatch',
          `frame ${frame.index} does not match its checksum (bytes changed)`,
          object,
          { frame: frame.index, at: frame.at },
        );
      body.copy(wal, frame.offset);
    }
  }
  return { format: layout.format, wal, validBytes: layout.validBytes, tornBytes: layout.tornBytes };
}
