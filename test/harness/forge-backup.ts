/**
 * Forging a committed backup, as someone with write access to the repository could: an object
 * replaced (or added) and `backup.json` rewritten so its sizes and checksums match. The one place
 * tests do this, so that whatever else a commit marker comes to carry (a signature) is redone
 * here for every test at once.
 */
import { createHash } from 'node:crypto';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  compressionExtension,
  createCompressor,
  createDecompressor,
  type Compression,
} from '../../src/pipeline/compression.ts';
import { decryptBuffer, encryptBuffer } from '../../src/pipeline/encryption/age-stream.ts';
import { parseRecipients, type AgeIdentity } from '../../src/pipeline/encryption/age-keys.ts';
import { backupPrefix, type ArchiveObject, type BackupRecord } from '../../src/repository/backup-catalog.ts';
import type { ObjectStore } from '../../src/repository/object-store.ts';
import { signRecord } from '../../src/pipeline/signing/record-signature.ts';
import type { SigningKey } from '../../src/pipeline/signing/signing-keys.ts';

/**
 * Reads, changes and writes back a backup's commit marker (`backups/<id>/backup.json`). The
 * record keeps its old signature, which no longer matches (what an attacker without the signing
 * key can do), unless `signWith` is given: the writer's own key, stolen, so that the defences
 * behind the signature check are tested on their own.
 */
export async function updateBackupRecord(
  store: ObjectStore,
  backupId: string,
  change: (record: BackupRecord) => void,
  signWith?: SigningKey,
): Promise<BackupRecord> {
  const key = `${backupPrefix(backupId)}backup.json`;
  let record = JSON.parse((await store.getBuffer(key)).toString('utf8')) as BackupRecord;
  change(record);
  if (signWith) {
    const meta = JSON.parse((await store.getBuffer('warden-repo.json')).toString('utf8')) as {
      systemId: string;
    };
    record = signRecord(record, { object: key, systemId: meta.systemId }, signWith);
  }
  await store.putBuffer(key, Buffer.from(`${JSON.stringify(record, null, 2)}\n`));
  return record;
}

export interface ForgeArchiveOptions {
  /** For an archive the backup does not hold yet: its tablespace (a `<oid>.tar` archive). */
  tablespace?: { oid: string; location: string };
  /** Re-sign backup.json with this (stolen) signing key; see updateBackupRecord. */
  signWith?: SigningKey;
}

/**
 * Replaces the archive named `archive` (`base.tar`, `16384.tar`) of a committed backup with
 * `tar` (uncompressed tar bytes), or adds it (before the others, where PostgreSQL sends
 * tablespaces) when the backup has none of that name. The bytes are compressed as the record
 * says and, when the backup is encrypted, encrypted to the recipients its record names — which
 * any reader of the repository knows. Sizes and sha256 in backup.json are made to match, so
 * checksums alone cannot tell the forgery.
 */
export async function forgeArchive(
  store: ObjectStore,
  backupId: string,
  archive: string,
  tar: Buffer,
  options: ForgeArchiveOptions = {},
): Promise<ArchiveObject> {
  let forged: ArchiveObject | undefined;
  const current = await readRecord(store, backupId);
  const existing = current.archives.find((a) => a.archive === archive);
  const compression: Compression = existing?.compression ?? current.compression;
  const key = existing?.key ?? `${backupPrefix(backupId)}${archive}${compressionExtension(compression)}`;
  let stored = await compressWith(tar, createCompressor(compression));
  if (current.encryption)
    stored = await encryptBuffer(stored, parseRecipients(current.encryption.recipients.join('\n')));
  await store.putBuffer(key, stored);
  await updateBackupRecord(
    store,
    backupId,
    (record) => {
      const fields = {
        key,
        size: stored.length,
        sha256: createHash('sha256').update(stored).digest('hex'),
        rawSize: tar.length,
        ...(record.encryption ? { encryption: record.encryption } : {}),
      };
      const index = record.archives.findIndex((a) => a.archive === archive);
      if (index >= 0) {
        forged = { ...record.archives[index]!, ...fields };
        record.archives[index] = forged;
      } else {
        forged = {
          ...fields,
          archive,
          compression,
          ...(options.tablespace ? { tablespace: options.tablespace } : {}),
        };
        record.archives.unshift(forged);
      }
    },
    options.signWith,
  );
  return forged!;
}

/** The uncompressed (and decrypted, given `identities`) tar bytes of one archive of a backup. */
export async function readArchiveTar(
  store: ObjectStore,
  backupId: string,
  archive: string,
  identities: readonly AgeIdentity[] = [],
): Promise<Buffer> {
  const record = await readRecord(store, backupId);
  const object = record.archives.find((a) => a.archive === archive);
  if (!object) throw new Error(`backup ${backupId} has no archive ${archive}`);
  let stored = await store.getBuffer(object.key);
  if (object.encryption) stored = await decryptBuffer(stored, { identities, object: object.key });
  return compressWith(stored, createDecompressor(object.compression));
}

async function readRecord(store: ObjectStore, backupId: string): Promise<BackupRecord> {
  return JSON.parse(
    (await store.getBuffer(`${backupPrefix(backupId)}backup.json`)).toString('utf8'),
  ) as BackupRecord;
}

/** Runs `data` through a (de)compressor: the same code the backup and restore use. */
async function compressWith(data: Buffer, transform: Transform): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(Readable.from([data]), transform, async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) chunks.push(Buffer.from(chunk));
  });
  return Buffer.concat(chunks);
}
