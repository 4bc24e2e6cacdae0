import { pipeline, type Readable } from 'node:stream';
import { diskFullError, isDiskFull, WardenError } from '../errors.ts';
import { createDecompressor, type Compression } from './compression.ts';
import { AgeDecryptStream } from './encryption/age-stream.ts';
import type { RepositoryKeys } from './encryption/repository-keys.ts';
import { HashingStream } from './hashing.ts';
import type { StoredObject } from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';

/**
 * Reads a stored object back decrypted (when its record says it is encrypted; with `keys`'
 * identities) and decompressed, while hashing the stored bytes. Call `check()` after
 * the stream was consumed: it fails with WARDEN_E_REPO_CORRUPT naming the object when the bytes
 * differ from what was recorded at backup time.
 */
export function readVerified(
  store: ObjectStore,
  object: StoredObject,
  compression: Compression,
  keys?: RepositoryKeys,
) {
  const hasher = new HashingStream();
  const decompressor = createDecompressor(compression);
  // Errors anywhere surface on the returned stream (the consumer's pipeline sees them).
  if (object.encryption) {
    const decryptor = new AgeDecryptStream({ identities: keys?.identities ?? [], object: object.key });
    pipeline(store.get(object.key), hasher, decryptor, decompressor, () => undefined);
  } else {
    pipeline(store.get(object.key), hasher, decompressor, () => undefined);
  }
  const stream: Readable = decompressor;
  return {
    stream,
    check(): void {
      const digest = hasher.digest();
      if (hasher.bytes !== object.size || digest !== object.sha256) throw corrupt(object, hasher.bytes);
    },
    /** Turns a decompression failure into the corruption error it really is. */
    explain(error: unknown): WardenError {
      if (error instanceof WardenError) return error;
      // The consumer's side failed (the restore target is full): the object is not to blame.
      if (isDiskFull(error)) return diskFullError(error, `writing what ${object.key} holds`);
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        return new WardenError(
          'WARDEN_E_REPO_CORRUPT',
          `object ${object.key} is missing from the repository`,
          {
            details: { object: object.key },
            cause: error,
          },
        );
      }
      return corrupt(object, hasher.bytes, error);
    },
  };
}

function corrupt(object: StoredObject, actualSize: number, cause?: unknown): WardenError {
  return new WardenError(
    'WARDEN_E_REPO_CORRUPT',
    `object ${object.key} does not match its recorded checksum`,
    {
      hint: 'The repository copy is damaged: restore from another backup or repository copy.',
      details: { object: object.key, expectedSize: object.size, actualSize, expectedSha256: object.sha256 },
      ...(cause ? { cause } : {}),
    },
  );
}

/**
 * Reads `object` through `readVerified` into `consume`, then checks it: a read failure becomes
 * the corruption (or missing-object) error it really is, and bytes that differ from the record
 * fail after the stream was consumed.
 */
export async function consumeVerified<T>(
  store: ObjectStore,
  object: StoredObject,
  compression: Compression,
  keys: RepositoryKeys | undefined,
  consume: (stream: Readable) => Promise<T>,
): Promise<T> {
  const reader = readVerified(store, object, compression, keys);
  let result: T;
  try {
    result = await consume(reader.stream);
  } catch (error) {
    throw reader.explain(error);
  }
  reader.check();
  return result;
}
