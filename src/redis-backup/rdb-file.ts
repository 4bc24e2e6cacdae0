import { createWriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { consumeVerified } from '../pipeline/object-source.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import type { RedisBackupRecord, RedisShardRecord } from './redis-catalog.ts';

/**
 * Writes one shard's RDB, decrypted and decompressed, to `file`: under a temporary name first,
 * renamed only once its stored bytes matched the recorded SHA-256, so a damaged object never
 * leaves a `dump.rdb` a server would load.
 */
export async function writeShardRdb(
  store: ObjectStore,
  record: RedisBackupRecord,
  shard: RedisShardRecord,
  keys: RepositoryKeys | undefined,
  file: string,
  signal?: AbortSignal,
): Promise<void> {
  const partial = `${file}.warden-partial`;
  await consumeVerified(store, shard.object, record.compression, keys, (stream) =>
    pipeline(stream, createWriteStream(partial, { mode: 0o600 }), signal ? { signal } : {}),
  );
  await rename(partial, file);
}
