import { createHash } from 'node:crypto';
import { WardenError } from '../errors.ts';
import type { BackupRecord } from '../repository/backup-catalog.ts';
import type { Repository } from '../repository/repository.ts';
import { consumeVerified } from '../pipeline/object-source.ts';
import { collect } from '../util/collect.ts';

/**
 * What UPLOAD_MANIFEST needs from the parent backup, readable without a decryption key.
 *
 * A backup host usually holds only the repository's public recipients: it can encrypt, never
 * decrypt, so it cannot read the parent's (encrypted) backup_manifest back. PostgreSQL's
 * incremental backup uses only the manifest's system identifier, WAL ranges and file list with
 * sizes, so Warden stores that much next to each PostgreSQL 17+ backup, unencrypted: the
 * manifest without its per-file checksums (`Checksum-Algorithm`/`Checksum`), its
 * `Manifest-Checksum` recomputed. It reveals file names (OIDs), sizes and modification times,
 * no data and no checksum of any data.
 */
export function incrementalBasis(manifest: Buffer): Buffer {
  const text = manifest.toString('utf8');
  const checksumLine = text.lastIndexOf('"Manifest-Checksum"');
  if (checksumLine < 0) throw new Error('backup_manifest has no Manifest-Checksum');
  // PostgreSQL writes one file per line: `{ "Path": ..., "Checksum-Algorithm": "CRC32C", "Checksum": "..." },`
  const body = text
    .slice(0, checksumLine)
    .replace(/, "Checksum-Algorithm": "[A-Z0-9-]+", "Checksum": "[0-9a-fA-F]*"/g, '');
  const digest = createHash('sha256').update(body, 'utf8').digest('hex');
  return Buffer.from(`${body}"Manifest-Checksum": "${digest}"}\n`, 'utf8');
}

/**
 * The manifest to upload for an incremental backup on `parent`: its stored basis (no key
 * needed), else its backup_manifest when this process holds an identity that opens it.
 */
export async function readIncrementalBasis(
  repository: Repository,
  parent: BackupRecord,
): Promise<Buffer | undefined> {
  const object =
    parent.incrementalBasis ??
    (repository.keys.identities?.length || !parent.manifest.encryption ? parent.manifest : undefined);
  if (!object) return undefined;
  const data = await consumeVerified(repository.store, object, 'zstd', repository.keys, collect);
  if (data.length === 0)
    throw new WardenError('WARDEN_E_REPO_CORRUPT', `${object.key} is empty`, {
      details: { object: object.key },
    });
  return data;
}
