import { createHash } from 'node:crypto';
import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { crc32cUpdate } from '../wal/wal-record-format.ts';

/** One file as PostgreSQL's backup_manifest lists it. */
export interface ManifestFile {
  path: string;
  size: number;
  algorithm: string;
  /** Hex, as PostgreSQL writes it (for CRC32C: the four bytes in the server's byte order). */
  checksum?: string;
}

export interface BackupManifest {
  version: number;
  files: Map<string, ManifestFile>;
  walRanges: Array<{ timeline: number; startLsn: string; endLsn: string }>;
}

/** A file in an archive that disagrees with the manifest. */
export interface ManifestMismatch {
  path: string;
  reason: 'size' | 'checksum' | 'not-in-manifest' | 'unsupported-algorithm';
  expected?: string | number;
  actual?: string | number;
}

interface RawManifest {
  'PostgreSQL-Backup-Manifest-Version'?: number;
  Files?: Array<{
    Path?: string;
    'Encoded-Path'?: string;
    Size?: number;
    'Checksum-Algorithm'?: string;
    Checksum?: string;
  }>;
  'WAL-Ranges'?: Array<{ Timeline: number; 'Start-LSN': string; 'End-LSN': string }>;
  'Manifest-Checksum'?: string;
}

/**
 * Parses a backup_manifest and checks its own SHA-256 (`Manifest-Checksum`). Throws an Error
 * saying what is wrong.
 */
export function parseBackupManifest(data: Buffer): BackupManifest {
  const text = new TextDecoder('utf-8', { fatal: true }).decode(data);
  const raw = JSON.parse(text) as RawManifest;
  const version = raw['PostgreSQL-Backup-Manifest-Version'];
  if (version !== 1 && version !== 2) throw new Error(`unknown manifest version ${String(version)}`);
  if (!raw['Manifest-Checksum']) throw new Error('no Manifest-Checksum');
  // As pg_verifybackup: the checksum covers everything up to and including the last but one newline.
  const ultimate = data.lastIndexOf(0x0a);
  const penultimate = ultimate > 0 ? data.lastIndexOf(0x0a, ultimate - 1) : -1;
  if (penultimate < 0) throw new Error('manifest has no checksum line');
  const digest = createHash('sha256')
    .update(data.subarray(0, penultimate + 1))
    .digest('hex');
  if (digest !== raw['Manifest-Checksum'].toLowerCase()) throw new Error('Manifest-Checksum does not match');
  const files = new Map<string, ManifestFile>();
  for (const entry of raw.Files ?? []) {
    const path =
      entry.Path ??
      (entry['Encoded-Path'] ? Buffer.from(entry['Encoded-Path'], 'hex').toString('latin1') : '');
    if (!path || typeof entry.Size !== 'number') throw new Error('manifest file entry without path or size');
    files.set(path, {
      path,
      size: entry.Size,
      algorithm: entry['Checksum-Algorithm'] ?? 'NONE',
      ...(entry.Checksum ? { checksum: entry.Checksum.toLowerCase() } : {}),
    });
  }
  return {
    version,
    files,
    walRanges: (raw['WAL-Ranges'] ?? []).map((r) => ({
      timeline: r.Timeline,
      startLsn: r['Start-LSN'],
      endLsn: r['End-LSN'],
    })),
  };
}

/** CRC-32C hex the way PostgreSQL's manifest writes it: the uint32 in little-endian byte order. */
function crcHex(crc: number): string {
  const out = Buffer.alloc(4);
  out.writeUInt32LE(~crc >>> 0);
  return out.toString('hex');
}

/**
 * Streams a (decompressed) tar archive and checks every regular file against the manifest:
 * size and CRC-32C. `pathPrefix` maps archive entries to manifest paths (`pg_tblspc/<oid>/`
 * for a tablespace archive); `through` sees the bytes first (a counter). Paths found are added
 * to `seen`. Returns the mismatches.
 */
export async function checkArchiveAgainstManifest(
  source: Readable,
  manifest: BackupManifest,
  pathPrefix: string,
  seen: Set<string>,
  through: Transform,
): Promise<ManifestMismatch[]> {
  const mismatches: ManifestMismatch[] = [];
  const extract = tar.extract();
  const consume = (async () => {
    for await (const entry of extract) {
      const header = entry.header;
      if (header.type !== 'file') {
        entry.resume();
        continue;
      }
      const path = `${pathPrefix}${header.name.replace(/^\.\//, '')}`;
      let size = 0;
      let crc = 0xffffffff;
      for await (const chunk of entry as AsyncIterable<Buffer>) {
        size += chunk.length;
        crc = crc32cUpdate(crc, chunk, 0, chunk.length);
      }
      const listed = manifest.files.get(path);
      if (!listed) {
        mismatches.push({ path, reason: 'not-in-manifest' });
        continue;
      }
      seen.add(path);
      if (listed.size !== size) {
        mismatches.push({ path, reason: 'size', expected: listed.size, actual: size });
      } else if (listed.algorithm === 'CRC32C') {
        const actual = crcHex(crc);
        if (actual !== listed.checksum) {
          mismatches.push({ path, reason: 'checksum', expected: listed.checksum ?? '', actual });
        }
      } else if (listed.algorithm !== 'NONE') {
        mismatches.push({ path, reason: 'unsupported-algorithm', expected: listed.algorithm });
      }
    }
  })();
  consume.catch((error: unknown) => extract.destroy(error as Error));
  await Promise.all([pipeline(source, through, extract), consume]);
  return mismatches;
}
