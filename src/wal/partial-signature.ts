import { createHash } from 'node:crypto';
import { WardenError } from '../errors.ts';
import {
  signatureError,
  type SignatureVerdict,
  type TrustPolicy,
} from '../pipeline/signing/record-signature.ts';
import { SigningPublicKey, type SigningKey } from '../pipeline/signing/signing-keys.ts';

/**
 * Signatures of a partial WAL segment's frames (wal/partial-format.ts). The partial has no record
 * to carry a signature, and its frames' own protection does not authenticate the writer: the
 * recipients are public, so anyone can seal frames with a file key of their own, and anyone can
 * compute a checksum. So each frame carries an Ed25519 signature of the writer's signing key over
 *
 *   `warden-partial-wal/v1 frame\n` | systemId `\n` | segment name `\n` | SHA-256(preamble) |
 *   frame header | SHA-256(stored body: ciphertext + tag, or bytes + checksum)
 *
 * One signature per flush (tens of µs), nothing per message. It covers the stored bytes, so it is
 * checked without any key to open them, before decryption; the preamble's hash ties every frame
 * to that file (its format line names the signing key, a sealed one holds the wrapped file key),
 * and the header's index and offset to its place in it.
 */
export const FRAME_SIGNATURE = 64;
const DOMAIN = Buffer.from('warden-partial-wal/v1 frame\n');

export interface PartialSigner {
  key: SigningKey;
  systemId: string;
}

function signedBytes(
  systemId: string,
  segment: string,
  preambleDigest: Buffer,
  header: Buffer,
  body: Buffer[],
) {
  const hash = createHash('sha256');
  for (const part of body) hash.update(part);
  return Buffer.concat([
    DOMAIN,
    Buffer.from(`${systemId}\n${segment}\n`),
    preambleDigest,
    header,
    hash.digest(),
  ]);
}

export function preambleDigest(preamble: Buffer): Buffer {
  return createHash('sha256').update(preamble).digest();
}

/** The signature closing one frame: `body` is the frame's stored body, in its parts. */
export function signFrame(
  signer: PartialSigner,
  segment: string,
  preambleHash: Buffer,
  header: Buffer,
  body: Buffer[],
): Buffer {
  return signer.key.sign(signedBytes(signer.systemId, segment, preambleHash, header, body));
}

/** What a signature check needs of a scanned partial. */
export interface SignedLayout {
  format: 'sealed' | 'checksummed' | 'raw';
  /** The signing key id the format line names (unsigned: absent). */
  signer?: string;
  validBytes: number;
  framesAt: number;
  frames: ReadonlyArray<{ index: number; length: number; at: number }>;
  /** Bytes after a frame's data: tag or checksum, plus the signature when signed. */
  overhead: number;
}

/**
 * The verdict on a partial's frames against the trusted keys (a key not trusted is still checked
 * for validity, as for records). A partial holding no WAL has nothing to sign: `trusted`.
 */
export function checkPartialSignature(
  data: Buffer,
  layout: SignedLayout,
  where: { segment: string; systemId: string },
  trusted: ReadonlyMap<string, SigningPublicKey>,
): SignatureVerdict & { frame?: number } {
  if (layout.validBytes === 0) return { status: 'trusted', key: '' };
  if (layout.format === 'raw' || !layout.signer) return { status: 'unsigned' };
  const key = layout.signer;
  let publicKey = trusted.get(key);
  if (!publicKey) {
    try {
      publicKey = SigningPublicKey.parse(key);
    } catch {
      return { status: 'invalid', key, reason: 'its format line names no wardensig1... key' };
    }
  }
  const digest = preambleDigest(data.subarray(0, layout.framesAt));
  for (const frame of layout.frames) {
    const header = data.subarray(frame.at, frame.at + 20);
    const bodyEnd = frame.at + 20 + frame.length + layout.overhead - FRAME_SIGNATURE;
    const body = data.subarray(frame.at + 20, bodyEnd);
    const signature = data.subarray(bodyEnd, bodyEnd + FRAME_SIGNATURE);
    if (!publicKey.verify(signedBytes(where.systemId, where.segment, digest, header, [body]), signature))
      return {
        status: 'invalid',
        key,
        reason: `frame ${frame.index}'s signature does not match it`,
        frame: frame.index,
      };
  }
  return trusted.has(key) ? { status: 'trusted', key } : { status: 'untrusted', key };
}

/**
 * Throws unless every frame is signed by a trusted key (an unsigned partial passes only under
 * `allowUnsigned`, reported to `onUnsigned`): WARDEN_E_UNSIGNED, _SIGNATURE_UNTRUSTED or
 * _SIGNATURE_INVALID with `details.object`.
 */
export function assertTrustedPartial(
  data: Buffer,
  layout: SignedLayout,
  where: { object: string; segment: string; systemId: string },
  trust: TrustPolicy,
): void {
  const error = partialSignatureError(
    checkPartialSignature(data, layout, where, trust.keys),
    where.object,
    trust,
  );
  if (error) throw error;
}

/** The error for a verdict a reader with this trust set refuses (undefined when it accepts it). */
export function partialSignatureError(
  verdict: SignatureVerdict & { frame?: number },
  object: string,
  trust: TrustPolicy,
): WardenError | undefined {
  if (verdict.status === 'unsigned') {
    if (trust.allowUnsigned) {
      trust.onUnsigned?.(object);
      return undefined;
    }
    return new WardenError('WARDEN_E_UNSIGNED', `partial WAL segment ${object} is not signed`, {
      hint:
        'A partial written before signing (or by a receiver without a signing key): the WAL receiver ' +
        'rewrites it signed when it next streams that segment; or accept it with --allow-unsigned (warns).',
      details: { object },
    });
  }
  const error = signatureError(verdict, { object, systemId: '' });
  if (error && verdict.frame !== undefined) error.details.frame = verdict.frame;
  return error;
}
