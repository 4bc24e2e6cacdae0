import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { toWardenError } from '../errors.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import type { VerifyProblem, VerifyReport } from '../verify/verify-report.ts';
import { checkRdbFile } from './rdb-check.ts';
import { writeShardRdb } from './rdb-file.ts';
import { parseRedisRecord, recordKeys } from './redis-catalog.ts';

export interface RedisVerifyOutcome {
  backups: number;
  /** Set when redis-check-rdb could not run: the RDBs' checksums were checked, their contents not. */
  contentsUnchecked?: string;
}

/**
 * Every Redis backup: its record (readable, signed, naming its own objects), each shard's object
 * (size, SHA-256, decryption, decompression), and the RDB inside it with `redis-check-rdb`. One
 * pass per shard through a private temp file, removed afterwards.
 */
export async function verifyRedisBackups(
  store: ObjectStore,
  problems: VerifyProblem[],
  checked: VerifyReport['checked'],
  keys: RepositoryKeys | undefined,
  signed: (record: unknown, object: string, breaks: string) => boolean,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RedisVerifyOutcome> {
  const outcome: RedisVerifyOutcome = { backups: 0 };
  const work = await mkdtemp(path.join(os.tmpdir(), 'warden-redis-verify-'));
  try {
    for (const key of await recordKeys(store)) {
      const id = key.split('/')[1]!;
      const breaks = `Redis backup ${id} unrestorable`;
      checked.objects += 1;
      outcome.backups += 1;
      let record;
      try {
        record = parseRedisRecord(await store.getBuffer(key), key);
      } catch (error) {
        problems.push({ kind: 'bad-record', object: key, message: (error as Error).message, breaks });
        continue;
      }
      if (!signed(record, key, breaks)) continue;
      for (const shard of record.shards) {
        checked.objects += 1;
        const object = shard.object.key;
        if (!(await store.stat(object))) {
          problems.push({ kind: 'missing', object, message: `${object} is missing`, breaks });
          continue;
        }
        const file = path.join(work, `${id}-${shard.name}.rdb`);
        try {
          await writeShardRdb(store, record, shard, keys, file);
          checked.bytes += shard.object.size;
        } catch (error) {
          const wrapped = toWardenError(error);
          problems.push({
            kind: 'corrupt',
            object,
            message: wrapped.message,
            breaks,
            details: { code: wrapped.code },
          });
          continue;
        }
        const result = await checkRdbFile(file, env);
        await rm(file, { force: true });
        if (result.ok === 'unavailable') outcome.contentsUnchecked = result.reason;
        else if (!result.ok) {
          problems.push({
            kind: 'corrupt',
            object,
            message: `redis-check-rdb refuses the RDB of ${shard.name}`,
            breaks,
            details: { code: 'WARDEN_E_RDB_INVALID', problem: 'redis-check-rdb', output: result.output },
          });
        }
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return outcome;
}
