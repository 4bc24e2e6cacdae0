import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { WardenError } from '../errors.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { Compression } from '../pipeline/compression.ts';
import type { ArchiveObject, BackupRecord, StoredObject } from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { readVerified } from '../pipeline/object-source.ts';
import { checkArchiveAgainstManifest, parseBackupManifest, type BackupManifest } from './backup-manifest.ts';
import type { VerifyProblem, VerifyReport } from './verify-report.ts';
import { notAgeProblem } from './encryption-checks.ts';

// One backup against its record and its backup_manifest, object by object: the part of
// `verifyRepository` that a restore check also runs on the backup it restored.

/** Counts bytes passing through (the decompressed size of an archive). */
class ByteCounter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

function compressionOfKey(key: string): Compression {
  return key.endsWith('.zst') ? 'zstd' : key.endsWith('.gz') ? 'gzip' : 'none';
}

/**
 * One backup's objects and every file in its archives against its backup_manifest (size and
 * CRC-32C), the check pg_verifybackup makes, done on the stored archives. Returns the problems.
 */
export async function verifyBackupAgainstManifest(
  store: ObjectStore,
  record: BackupRecord,
  keys?: RepositoryKeys,
): Promise<{ problems: VerifyProblem[]; manifestFiles: number }> {
  const problems: VerifyProblem[] = [];
  const checked = { objects: 0, bytes: 0, backups: 0, manifestFiles: 0, walSegments: 0, dumps: 0 };
  await verifyBackup(store, record, problems, checked, keys);
  return { problems, manifestFiles: checked.manifestFiles };
}

/** Checks one backup's objects and its files against the manifest; true when anything is wrong. */
export async function verifyBackup(
  store: ObjectStore,
  record: BackupRecord,
  problems: VerifyProblem[],
  checked: VerifyReport['checked'],
  keys: RepositoryKeys | undefined,
): Promise<boolean> {
  const before = problems.length;
  const unrestorable = `backup ${record.id} unrestorable`;
  const add = (problem: Omit<VerifyProblem, 'backups' | 'breaks'> & { breaks?: string }) =>
    problems.push({ breaks: unrestorable, backups: [record.id], ...problem });

  let manifest: BackupManifest | undefined;
  const manifestData = await readObject(store, record.manifest, 'zstd', add, checked, true, keys);
  if (manifestData) {
    try {
      manifest = parseBackupManifest(manifestData);
      checked.manifestFiles += manifest.files.size;
      const range = manifest.walRanges[0];
      if (range && (range.startLsn !== record.startLsn || range.endLsn !== record.endLsn)) {
        add({
          kind: 'manifest-mismatch',
          object: record.manifest.key,
          message: `manifest WAL range ${range.startLsn}..${range.endLsn} differs from the record's ${record.startLsn}..${record.endLsn}`,
        });
      }
    } catch (error) {
      add({
        kind: 'corrupt',
        object: record.manifest.key,
        message: `backup_manifest cannot be parsed: ${(error as Error).message}`,
      });
    }
  }

  if (record.incrementalBasis) {
    // Damage here costs the next incremental (a full backup is taken instead), not this backup.
    const addBasisProblem: AddProblem = (problem) =>
      problems.push({ breaks: `incremental backups on ${record.id}`, backups: [], ...problem });
    const basis = await readObject(
      store,
      record.incrementalBasis,
      'zstd',
      addBasisProblem,
      checked,
      true,
      keys,
    );
    if (basis) {
      try {
        parseBackupManifest(basis);
      } catch (error) {
        addBasisProblem({
          kind: 'corrupt',
          object: record.incrementalBasis.key,
          message: `incremental basis cannot be parsed: ${(error as Error).message}`,
        });
      }
    }
  }

  const seen = new Set<string>();
  for (const archive of record.archives) {
    await verifyArchive(store, record, archive, manifest, seen, add, checked, keys);
  }
  if (manifest) {
    const missing = [...manifest.files.keys()].filter((p) => !seen.has(p));
    if (missing.length) {
      add({
        kind: 'manifest-mismatch',
        object: record.archives[0]!.key,
        message: `${missing.length} file(s) listed in backup_manifest are in no archive: ${missing.slice(0, 5).join(', ')}`,
        details: { files: missing },
      });
    }
  }
  return problems.length > before;
}

type AddProblem = (problem: Omit<VerifyProblem, 'backups' | 'breaks'> & { breaks?: string }) => void;

async function verifyArchive(
  store: ObjectStore,
  record: BackupRecord,
  archive: ArchiveObject,
  manifest: BackupManifest | undefined,
  seen: Set<string>,
  add: AddProblem,
  checked: VerifyReport['checked'],
  keys: RepositoryKeys | undefined,
): Promise<void> {
  checked.objects += 1;
  if (!(await store.stat(archive.key))) {
    add({ kind: 'missing', object: archive.key, message: `archive ${archive.archive} is missing` });
    return;
  }
  const plaintext = archive.encryption ? await notAgeProblem(store, archive.key) : undefined;
  if (plaintext) {
    add(plaintext);
    return;
  }
  const reader = readVerified(store, archive, compressionOfKey(archive.key), keys);
  const counter = new ByteCounter();
  const prefix = archive.tablespace ? `pg_tblspc/${archive.tablespace.oid}/` : '';
  try {
    const scratch = new Set<string>();
    const mismatches = manifest
      ? await checkArchiveAgainstManifest(reader.stream, manifest, prefix, scratch, counter)
      : await drain(reader.stream, counter);
    reader.check();
    checked.bytes += archive.size;
    for (const path of scratch) seen.add(path);
    if (record.compressedOn === 'client' && counter.bytes !== archive.rawSize) {
      add({
        kind: 'corrupt',
        object: archive.key,
        message: `decompresses to ${counter.bytes} bytes, the record says ${archive.rawSize}`,
      });
    }
    for (const mismatch of mismatches.slice(0, 20)) {
      add({
        kind: 'manifest-mismatch',
        object: archive.key,
        message:
          mismatch.reason === 'not-in-manifest'
            ? `${mismatch.path} is not listed in backup_manifest`
            : `${mismatch.path}: ${mismatch.reason} ${String(mismatch.actual ?? '')} differs from the manifest's ${String(mismatch.expected ?? '')}`,
        details: { file: mismatch.path, reason: mismatch.reason },
      });
    }
  } catch (error) {
    // Any failure while reading is either the checksum mismatch or what it caused.
    let explained = reader.explain(error);
    try {
      reader.check();
    } catch (mismatch) {
      explained = mismatch as WardenError;
    }
    add({ kind: 'corrupt', object: archive.key, message: explained.message });
  }
}

async function drain(stream: Readable, counter: ByteCounter): Promise<[]> {
  await pipeline(stream, counter, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) void chunk;
  });
  return [];
}

/** Reads an object through readVerified (keeping the bytes when `keep`); records a problem and returns undefined when damaged. */
export async function readObject(
  store: ObjectStore,
  object: StoredObject,
  compression: Compression,
  add: AddProblem,
  checked: VerifyReport['checked'],
  keep = true,
  keys?: RepositoryKeys,
): Promise<Buffer | undefined> {
  checked.objects += 1;
  if (!(await store.stat(object.key))) {
    add({ kind: 'missing', object: object.key, message: `${object.key} is missing` });
    return undefined;
  }
  const plaintext = object.encryption ? await notAgeProblem(store, object.key) : undefined;
  if (plaintext) {
    add(plaintext);
    return undefined;
  }
  const reader = readVerified(store, object, compression, keys);
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of reader.stream as AsyncIterable<Buffer>) if (keep) chunks.push(chunk);
    reader.check();
    checked.bytes += object.size;
    return Buffer.concat(chunks);
  } catch (error) {
    let explained = reader.explain(error);
    try {
      reader.check();
    } catch (mismatch) {
      explained = mismatch as WardenError;
    }
    add({ kind: 'corrupt', object: object.key, message: explained.message });
    return undefined;
  }
}
