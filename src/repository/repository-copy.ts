import { createHash } from 'node:crypto';
import { WardenError } from '../errors.ts';
import { backupObjects, backupPrefix, listBackups, type StoredObject } from './backup-catalog.ts';
import type { ObjectStore } from './object-store.ts';
import { dumpRecordKey, listDumps } from './dump-catalog.ts';
import { dataObjectTimes } from './object-ages.ts';
import { storageClassFor, type StorageClassRule } from './storage-class-rules.ts';
import { Repository } from './repository.ts';
import { throwIfAborted } from '../util/abort.ts';
import { lockHolder } from './repository-lock.ts';
import { parseLsn, segmentName } from '../wal/lsn.ts';
import { signedForWrite } from './record-trust.ts';
import type { SigningKey } from '../pipeline/signing/signing-keys.ts';
import {
  derivedSlotName,
  META_KEY,
  newRepositoryId,
  parseRepositoryMeta,
  type RepositoryMeta,
} from './repository-meta.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import {
  historyKey,
  historyRecordKey,
  readWalInventory,
  segmentDataKey,
  segmentRecordKey,
  type WalInventory,
} from './wal-archive.ts';

export interface CopyReport {
  from: string;
  to: string;
  /** Backup ids copied now; backups the target already had are not counted. */
  backups: string[];
  /** Committed backups left for a later pass: their last WAL segment is still being streamed. */
  waitingForWal: string[];
  segments: number;
  histories: number;
  /** Dump ids copied now. */
  dumps: string[];
  /** Other repository files copied (e.g. wrapped keys under keys/). */
  others: number;
  bytes: number;
  durationMs: number;
}

/** Prefixes copied as they are when the target lacks them (passphrase-wrapped keys). */
const PLAIN_PREFIXES = ['keys/'];

/**
 * Copies what `to` lacks of `from`'s committed state, so either can serve restores: every
 * committed backup (its objects first, each checked against the size and SHA-256 its record
 * names, then `backup.json` last, so a copy cut off halfway is an unfinished attempt and never
 * listed), every archived WAL segment (data first, its `.json` record last) and the timeline
 * history files, then every committed dump (object first, `dump.json` last). Objects are copied byte for byte, so encrypted
 * repositories stay encrypted. Unfinished backups and dumps and the partial segment being
 * received are not copied. WAL goes before the backups, so a backup that appears in the target
 * already has the WAL it needs to be consistent (one whose last segment is still the partial
 * a running stream receives waits for a later pass).
 *
 * With `options.storageClasses` (an S3 target), each data object is uploaded straight into the
 * class its age calls for (docs/repository-s3.md#storage-classes); records stay in the default.
 *
 * With `options.keys.trust`, every record of the source (metadata, backups, WAL, histories,
 * stream state) must be signed by a trusted key: all are read and checked before the first
 * byte is written to the target, and an untrusted one stops the copy naming it.
 *
 * @example
 * const report = await copyRepository(new FsObjectStore('/var/backups/warden'), s3Store);
 */
export async function copyRepository(
  from: ObjectStore,
  to: ObjectStore,
  options: {
    keys?: RepositoryKeys;
    /** Signs the target's own warden-repo.json (new id and slot); without it that file is unsigned. */
    signingKey?: SigningKey;
    /** Stops between objects (WARDEN_E_ABORTED); a backup being copied is removed from the target. */
    signal?: AbortSignal;
    /** The target's age rules: objects already old enough are written in their class. */
    storageClasses?: readonly StorageClassRule[];
    /** The clock the ages are measured against (default: now). */
    now?: Date;
  } = {},
): Promise<CopyReport> {
  const { signal } = options;
  const started = performance.now();
  const source = await Repository.open(from, options.keys);
  const inventory = await readWalInventory(source);
  const backups = await listBackups(source);
  const dumps = await listDumps(source);
  const rules = options.storageClasses ?? [];
  const times = rules.length ? dataObjectTimes({ backups, dumps, segments: inventory.segments }) : new Map();
  const nowMs = (options.now ?? new Date()).getTime();
  const classOf = (key: string): string | undefined => {
    const at = times.get(key);
    return storageClassFor(at ? nowMs - at.getTime() : undefined, rules);
  };
  await openTarget(source, to, options.signingKey);
  const report: CopyReport = {
    from: from.location,
    to: to.location,
    backups: [],
    waitingForWal: [],
    segments: 0,
    histories: 0,
    dumps: [],
    others: 0,
    bytes: 0,
    durationMs: 0,
  };

  const present = new Set(await to.list(''));
  for (const prefix of PLAIN_PREFIXES) {
    for (const key of await from.list(prefix)) {
      if (present.has(key)) continue;
      await to.putBuffer(key, await from.getBuffer(key));
      report.others += 1;
    }
  }

  for (const timeline of inventory.histories) {
    const key = historyKey(timeline);
    const recordKey = historyRecordKey(timeline);
    if (present.has(key) && (present.has(recordKey) || !(await from.stat(recordKey)))) continue;
    await to.putBuffer(key, await from.getBuffer(key));
    if (await from.stat(recordKey)) await to.putBuffer(recordKey, await from.getBuffer(recordKey));
    report.histories += 1;
  }
  for (const records of inventory.segments.values()) {
    for (const record of records) {
      const recordKey = segmentRecordKey(record.timeline, record.segment);
      if (present.has(recordKey)) continue;
      throwIfAborted(signal, 'repo copy');
      const dataKey = segmentDataKey(record.timeline, record.segment);
      report.bytes += await copyVerified(
        from,
        to,
        { key: dataKey, size: record.size, sha256: record.sha256 },
        signal,
        classOf(dataKey),
      );
      await to.putBuffer(recordKey, await from.getBuffer(recordKey));
      report.segments += 1;
    }
  }

  const segmentSize = source.meta.walSegmentSize;
  // While a stream runs, the partial it receives is archived as soon as its segment completes.
  const streaming = (await lockHolder(from, 'wal-stream')) !== undefined;
  for (const backup of backups) {
    const marker = `${backupPrefix(backup.id)}backup.json`;
    if (present.has(marker)) continue;
    // A backup whose last WAL segment is still the partial the stream is receiving is copied by
    // a later pass: the partial is not copied, and the backup would arrive without the WAL it
    // needs. (Without a stream, a one-off backup's last segment stays partial until the next
    // backup: it is copied as before, and the copy restores it once that segment follows.)
    if (streaming && !lastSegmentArchived(inventory, backup, segmentSize)) {
      report.waitingForWal.push(backup.id);
      continue;
    }
    try {
      for (const object of backupObjects(backup)) {
        throwIfAborted(signal, 'repo copy');
        report.bytes += await copyVerified(from, to, object, signal, classOf(object.key));
      }
      await to.putBuffer(marker, await from.getBuffer(marker));
    } catch (error) {
      await to.delete(backupPrefix(backup.id)).catch(() => undefined);
      throw error;
    }
    report.backups.push(backup.id);
  }

  for (const dump of dumps) {
    const marker = dumpRecordKey(dump.id);
    if (present.has(marker)) continue;
    throwIfAborted(signal, 'repo copy');
    report.bytes += await copyVerified(from, to, dump.object, signal, classOf(dump.object.key));
    await to.putBuffer(marker, await from.getBuffer(marker));
    report.dumps.push(dump.id);
  }

  report.durationMs = Math.round(performance.now() - started);
  return report;
}

/**
 * The target repository: created with the source's metadata but an identity of its own (a copy
 * that streams later must not share the source's replication slot), or checked to be the same
 * cluster's.
 */
async function openTarget(source: Repository, to: ObjectStore, signingKey?: SigningKey): Promise<Repository> {
  if (!(await to.stat(META_KEY))) {
    const repositoryId = newRepositoryId();
    const { signature: _sourceSignature, ...fields } = source.meta;
    const own: RepositoryMeta = { ...fields, repositoryId, slot: derivedSlotName(repositoryId) };
    const target = new Repository(to, own, signingKey ? { signingKey } : {});
    const signed = signedForWrite(target, META_KEY, own);
    const meta = Buffer.from(`${JSON.stringify(signed, null, 2)}\n`);
    if (await to.createExclusive(META_KEY, meta)) return target;
  }
  const target = new Repository(to, parseRepositoryMeta(await to.getBuffer(META_KEY), to.location));
  target.assertSameCluster(source.meta.systemId);
  return target;
}

/** Streams one object across, hashing what was read; a mismatch removes the copy. */
async function copyVerified(
  from: ObjectStore,
  to: ObjectStore,
  object: Pick<StoredObject, 'key' | 'size' | 'sha256'>,
  signal: AbortSignal | undefined,
  storageClass?: string,
): Promise<number> {
  const hash = createHash('sha256');
  const source = from.get(object.key);
  const { size } = await to.put(
    object.key,
    (async function* hashed() {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        hash.update(chunk);
        yield chunk;
      }
    })(),
    { ...(signal ? { signal } : {}), ...(storageClass ? { storageClass } : {}) },
  );
  const digest = hash.digest('hex');
  if (size !== object.size || digest !== object.sha256) {
    await to.delete(object.key).catch(() => undefined);
    throw new WardenError(
      'WARDEN_E_REPO_CORRUPT',
      `object ${object.key} in ${from.location} does not match its recorded checksum; not copied`,
      {
        hint: 'The source copy is damaged: copy the other way, or take a new backup.',
        details: {
          object: object.key,
          expectedSize: object.size,
          actualSize: size,
          expectedSha256: object.sha256,
        },
      },
    );
  }
  return size;
}

/** Whether the segment holding the WAL just before the backup's end (its consistency point) is archived. */
function lastSegmentArchived(
  inventory: WalInventory,
  backup: { timeline: number; endLsn: string },
  segmentSize: number,
): boolean {
  const end = parseLsn(backup.endLsn);
  const last = segmentName(backup.timeline, end > 0n ? end - 1n : end, segmentSize);
  return (inventory.segments.get(backup.timeline) ?? []).some((record) => record.segment === last);
}
