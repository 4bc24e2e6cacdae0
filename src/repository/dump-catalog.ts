import { WardenError } from '../errors.ts';
import type { Compression } from '../pipeline/compression.ts';
import type { RecordSignature } from '../pipeline/signing/record-signature.ts';
import type { StoredObject } from './backup-catalog.ts';
import { checkTrusted, signedForWrite } from './record-trust.ts';
import type { Repository } from './repository.ts';

/**
 * `dumps/<id>/dump.json`: the commit marker of a logical dump (pg_dump custom format). Written
 * last, after the dump object it lists is durable; a `dumps/<id>/` without it is an unfinished
 * attempt and never listed.
 */
export interface DumpRecord {
  format: 1;
  id: string;
  kind: 'logical';
  database: string;
  systemId: string;
  /** `server_version` and `server_version_num` of the server the dump was taken from. */
  serverVersion: string;
  serverVersionNum: number;
  /** `pg_dump --version` output, e.g. `pg_dump (PostgreSQL) 15.20`. */
  pgDumpVersion: string;
  /** pg_dump's own format; Warden asks for no pg_dump compression and compresses itself. */
  dumpFormat: 'custom';
  compression: Compression;
  object: StoredObject;
  startTime: string;
  endTime: string;
  durationMs: number;
  /** Ed25519 signature of the writer's signing key over the rest of the record (docs/security.md). */
  signature?: RecordSignature;
}

const DUMPS = 'dumps/';
export const DUMP_RECORD_FILE = 'dump.json';

export function dumpPrefix(id: string): string {
  return `${DUMPS}${id}/`;
}

export function dumpRecordKey(id: string): string {
  return `${dumpPrefix(id)}${DUMP_RECORD_FILE}`;
}

/** Committed dumps, oldest first. */
export async function listDumps(repository: Repository): Promise<DumpRecord[]> {
  const keys = await repository.store.list(DUMPS);
  const records: DumpRecord[] = [];
  for (const key of keys.filter((k) => k.endsWith(`/${DUMP_RECORD_FILE}`))) {
    const record = parseDumpRecord(await repository.store.getBuffer(key), key);
    checkTrusted(repository, key, record);
    records.push(record);
  }
  return records.sort((a, b) => a.startTime.localeCompare(b.startTime));
}

export async function getDump(repository: Repository, id: string): Promise<DumpRecord> {
  const key = dumpRecordKey(id);
  if (!/^[0-9A-Za-z-]+$/.test(id) || !(await repository.store.stat(key))) {
    throw new WardenError('WARDEN_E_DUMP_NOT_FOUND', `no dump "${id}" in ${repository.location}`, {
      hint: 'Run `warden dump list` to see the dumps.',
      details: { id },
    });
  }
  const record = parseDumpRecord(await repository.store.getBuffer(key), key);
  checkTrusted(repository, key, record);
  return record;
}

export async function commitDump(repository: Repository, record: DumpRecord): Promise<void> {
  const key = dumpRecordKey(record.id);
  await repository.store.putBuffer(
    key,
    Buffer.from(`${JSON.stringify(signedForWrite(repository, key, record), null, 2)}\n`),
  );
}

/** A new dump id: UTC start time with a `D` suffix, like 20261122-143005D. */
export function newDumpId(now: Date, existing: ReadonlySet<string>): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  let id = `${stamp}D`;
  for (let n = 2; existing.has(id); n += 1) id = `${stamp}D${n}`;
  return id;
}

export function parseDumpRecord(data: Buffer, key: string): DumpRecord {
  try {
    const record = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data)) as DumpRecord;
    if (record.format !== 1 || record.kind !== 'logical') throw new Error(`format ${String(record.format)}`);
    return record;
  } catch (cause) {
    throw new WardenError('WARDEN_E_REPO_FORMAT', `${key} cannot be read`, {
      details: { object: key },
      cause,
    });
  }
}
