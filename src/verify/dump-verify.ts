import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { DUMP_RECORD_FILE, parseDumpRecord } from '../repository/dump-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { readObject } from './backup-verify.ts';
import type { VerifyProblem, VerifyReport } from './verify-report.ts';

/**
 * Every logical dump: its record (readable, signed, naming its own directory) and its object
 * (size, SHA-256, decompression, decryption), as a restore of it would read them.
 */
export async function verifyDumps(
  store: ObjectStore,
  problems: VerifyProblem[],
  checked: VerifyReport['checked'],
  keys: RepositoryKeys | undefined,
  signed: (record: unknown, object: string, breaks: string) => boolean,
): Promise<void> {
  for (const key of (await store.list('dumps/')).filter((k) => k.endsWith(`/${DUMP_RECORD_FILE}`))) {
    const id = key.split('/')[1]!;
    const breaks = `dump ${id} unrestorable`;
    checked.objects += 1;
    checked.dumps += 1;
    let record;
    try {
      record = parseDumpRecord(await store.getBuffer(key), key);
      if (record.id !== id || !record.object.key.startsWith(`dumps/${id}/`))
        throw new Error('names another dump');
    } catch (error) {
      problems.push({
        kind: 'bad-record',
        object: key,
        message: `dump record cannot be read: ${((error as Error).cause as Error)?.message ?? (error as Error).message}`,
        breaks,
      });
      continue;
    }
    if (!signed(record, key, breaks)) continue;
    await readObject(
      store,
      record.object,
      record.compression,
      (problem) => problems.push({ breaks, ...problem }),
      checked,
      false,
      keys,
    );
  }
}
