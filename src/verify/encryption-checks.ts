import { isWardenError } from '../errors.ts';
import { parseHeader } from '../pipeline/encryption/age-header.ts';
import type { BackupRecord } from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import type { Repository } from '../repository/repository.ts';
import type { PartialSegment } from '../repository/wal-archive.ts';
import { openPartial, scanPartial } from '../wal/partial-format.ts';
import { parseSegmentName } from '../wal/lsn.ts';
import { checkPartialSignature, partialSignatureError } from '../wal/partial-signature.ts';
import type { VerifyProblem } from './verify-report.ts';

type NewProblem = Omit<VerifyProblem, 'breaks' | 'backups'> & { breaks?: string };

/**
 * Whether a stored object whose record says "age file" really starts with an age header: an
 * object swapped for plaintext (with its record's checksum updated to match) would otherwise be
 * reported as merely damaged, or not at all by a reader holding no key. Returns the problem, or
 * undefined when the header parses.
 */
export async function notAgeProblem(
  store: ObjectStore,
  key: string,
  sealedPartial = false,
): Promise<NewProblem | undefined> {
  if (sealedPartial) return notSealedProblem(store, key);
  let data = Buffer.alloc(0);
  let why: string;
  const stream = store.get(key);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      data = Buffer.concat([data, chunk]);
      if (parseHeader(data, key)) return undefined;
    }
    // Cut short inside its header: damage (the checksum and the reader report it), not plaintext.
    return undefined;
  } catch (error) {
    if (!isWardenError(error, 'WARDEN_E_REPO_CORRUPT')) throw error;
    why = error.message;
  } finally {
    stream.destroy();
  }
  return {
    kind: 'plaintext',
    object: key,
    message: `its record says it is encrypted (an age file), but its bytes are not one: ${why}`,
    details: { problem: 'recorded-encrypted-not-age' },
  };
}

/** A `sealed-partial` container must hold a sealed partial (its frames are checked when read). */
async function notSealedProblem(store: ObjectStore, key: string): Promise<NewProblem | undefined> {
  let format: string;
  try {
    format = scanPartial(await store.getBuffer(key), key, Number.MAX_SAFE_INTEGER).format;
  } catch (error) {
    if (!isWardenError(error, 'WARDEN_E_REPO_CORRUPT')) throw error;
    format = 'damaged';
  }
  if (format === 'sealed' || format === 'damaged') return undefined;
  return {
    kind: 'plaintext',
    object: key,
    message: `its record says it is a sealed partial segment, but it is stored in the clear (${format})`,
    details: { problem: 'recorded-encrypted-not-age' },
  };
}

/** A repository is encrypted once any backup or segment record, or a passphrase key, says so. */
export async function repositoryIsEncrypted(
  store: ObjectStore,
  backups: readonly BackupRecord[],
): Promise<boolean> {
  if (backups.some((b) => b.manifest.encryption || b.archives.some((a) => a.encryption))) return true;
  return (await store.list('keys/')).length > 0;
}

/**
 * Checks one partial segment: its frame layout, then every frame authenticated (sealed, when the
 * identities are given) or checked against its checksum; in an encrypted repository, a partial
 * that is not sealed is a `plaintext` problem; with the handle's trust set, one not signed by a
 * trusted key is a `signature` problem. Returns the partial when it verified (so it counts
 * for WAL continuity), plus the problem found, if any.
 */
export async function checkPartial(
  repository: Repository,
  key: string,
  encrypted: () => boolean,
): Promise<{ partial?: PartialSegment; problem?: NewProblem }> {
  const segmentSize = repository.meta.walSegmentSize;
  const segment = key.slice(key.lastIndexOf('/') + 1, -'.partial'.length);
  const parsed = parseSegmentName(segment, segmentSize);
  if (!parsed) return {};
  let data: Buffer;
  try {
    data = await repository.store.getBuffer(key);
  } catch (error) {
    // Archived (and removed) by the running receiver since the listing.
    if (!(await repository.store.stat(key))) return {};
    throw error;
  }
  const corrupt = (error: unknown): { problem: NewProblem } => {
    if (!isWardenError(error)) throw error;
    return {
      problem: {
        kind: 'corrupt',
        object: key,
        message: error.message,
        details: { ...(error.details.problem ? { problem: error.details.problem } : {}), code: error.code },
      },
    };
  };
  let layout;
  try {
    layout = scanPartial(data, key, segmentSize);
  } catch (error) {
    return corrupt(error);
  }
  if (layout.format !== 'sealed' && data.length > 0 && encrypted()) {
    return {
      problem: {
        kind: 'plaintext',
        object: key,
        message: `the partial segment is stored in the clear (${layout.format === 'raw' ? 'raw WAL' : 'checksummed, not sealed'}) in an encrypted repository`,
        details: { problem: 'plaintext-partial', format: layout.format },
      },
    };
  }
  if (layout.format === 'raw') {
    return {
      problem: {
        kind: 'corrupt',
        object: key,
        message:
          'the partial segment is raw WAL without frame checksums (written by an earlier Warden); the WAL receiver rewrites it framed when it next starts',
        details: { problem: 'partial-unframed' },
      },
    };
  }
  const partial: PartialSegment = {
    key,
    segment,
    timeline: parsed.timeline,
    startLsn: parsed.startLsn,
    validBytes: layout.validBytes,
    format: layout.format,
  };
  // Keyless, before the frames are opened: a partial a restore would refuse is evidence of no WAL.
  const trust = repository.keys.trust;
  if (trust) {
    const where = { segment, systemId: repository.meta.systemId };
    const error = partialSignatureError(checkPartialSignature(data, layout, where, trust.keys), key, trust);
    if (error)
      return {
        problem: {
          kind: 'signature',
          object: key,
          message: error.message,
          breaks: 'restores refuse the repository while this partial segment is in it',
          details: { code: error.code, ...error.details },
        },
      };
  }
  // Without identities a sealed partial's frames are checked as far as the layout goes.
  const identities = repository.keys.identities;
  if (layout.format === 'sealed' && !identities?.length) return { partial };
  try {
    await openPartial(data, { object: key, segment, segmentSize, identities, checkHeader: true });
  } catch (error) {
    return corrupt(error);
  }
  return { partial };
}
