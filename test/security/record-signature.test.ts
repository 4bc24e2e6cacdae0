import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isWardenError } from '../../src/errors.ts';
import type { RepositoryKeys } from '../../src/pipeline/encryption/repository-keys.ts';
import {
  canonicalJson,
  checkRecordSignature,
  signRecord,
  type TrustPolicy,
} from '../../src/pipeline/signing/record-signature.ts';
import {
  SigningKey,
  SigningPublicKey,
  parseSigningKeys,
  signingKeyFileText,
} from '../../src/pipeline/signing/signing-keys.ts';
import { commitBackup, listBackups, type BackupRecord } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import type { ObjectStore } from '../../src/repository/object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { copyRepository } from '../../src/repository/repository-copy.ts';
import {
  historyKey,
  historyRecordKey,
  readWalInventory,
  STREAM_STATE_KEY,
  storeHistory,
  writeStreamState,
} from '../../src/repository/wal-archive.ts';
import { restore } from '../../src/restore/restore.ts';
import { verifyRepository } from '../../src/verify/repository-verify.ts';
import { startS3, type TestS3 } from '../harness/s3.ts';

const writer = SigningKey.generate();
const cluster = { systemId: '7710787278238106748', walSegmentSize: 16 * 1024 * 1024, serverVersion: '15.20' };
const trust = (extra: Partial<TrustPolicy> = {}): RepositoryKeys => ({
  trust: { keys: new Map([[writer.id, writer.publicKey]]), ...extra },
});

let dir: string;
let s3: TestS3;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'warden-signing-'));
  s3 = await startS3();
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
  await s3?.stop();
});

function sampleRecord(id = '20261205-120000F'): BackupRecord {
  return {
    format: 1,
    id,
    kind: 'full',
    systemId: cluster.systemId,
    timeline: 1,
    startLsn: '0/2000028',
    endLsn: '0/2000100',
    startTime: '2026-12-05T12:00:00.000Z',
    endTime: '2026-12-05T12:00:01.000Z',
    serverVersion: cluster.serverVersion,
    compression: 'zstd',
    compressedOn: 'client',
    archives: [
      {
        key: `backups/${id}/base.tar.zst`,
        archive: 'base.tar',
        compression: 'zstd',
        size: 1234,
        sha256: 'a'.repeat(64),
        rawSize: 99999,
      },
    ],
    manifest: { key: `backups/${id}/backup_manifest.zst`, size: 10, sha256: 'b'.repeat(64), rawSize: 20 },
    encryption: {
      format: 'age-v1',
      recipients: ['age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq'],
    },
    durationMs: 1000,
  };
}

async function newRepository(store: ObjectStore): Promise<Repository> {
  return Repository.openFor(store, cluster, { signingKey: writer });
}

test('canonical JSON sorts keys at every level and drops whitespace', () => {
  assert.equal(canonicalJson({ b: [{ y: 1, x: 'é' }], a: null }), '{"a":null,"b":[{"x":"é","y":1}]}');
  assert.equal(canonicalJson(JSON.parse('{ "b" : 1,\n\t"a" : [ 2 ] }')), '{"a":[2],"b":1}');
});

test('signing keys round-trip through their file and text forms', () => {
  const key = SigningKey.generate();
  const [parsed] = parseSigningKeys(signingKeyFileText(key));
  assert.equal(parsed!.id, key.id);
  assert.match(key.id, /^wardensig1[02-9ac-hj-np-z]+$/);
  assert.equal(SigningPublicKey.parse(key.id).id, key.id);
  assert.throws(() => SigningPublicKey.parse(key.encode()), /not a Warden signing public key/);
  assert.throws(() => SigningKey.parse(key.id), /not a Warden signing key/);
});

test('every single-bit flip of a signed record is detected', () => {
  const where = { object: 'backups/20261205-120000F/backup.json', systemId: cluster.systemId };
  const text = Buffer.from(`${JSON.stringify(signRecord(sampleRecord(), where, writer), null, 2)}\n`);
  const trusted = new Map([[writer.id, writer.publicKey]]);
  assert.equal(checkRecordSignature(JSON.parse(text.toString()), where, trusted).status, 'trusted');
  let parsedButRejected = 0;
  for (let offset = 0; offset < text.length; offset += 1) {
    for (let bit = 0; bit < 8; bit += 1) {
      const flipped = Buffer.from(text);
      flipped[offset]! ^= 1 << bit;
      let record: unknown;
      try {
        record = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(flipped));
      } catch {
        continue; // no longer a record at all: readers refuse it as WARDEN_E_REPO_FORMAT
      }
      const verdict = checkRecordSignature(record, where, trusted);
      assert.notEqual(verdict.status, 'trusted', `flip of bit ${bit} at byte ${offset} went unnoticed`);
      parsedButRejected += 1;
    }
  }
  assert.ok(
    parsedButRejected > 100,
    `${parsedButRejected} flips still parsed; each was caught by the signature`,
  );
});

test('a signature binds the record to its key and to the repository', () => {
  const where = { object: 'backups/20261205-120000F/backup.json', systemId: cluster.systemId };
  const signed = signRecord(sampleRecord(), where, writer);
  const trusted = new Map([[writer.id, writer.publicKey]]);
  assert.equal(
    checkRecordSignature(signed, { ...where, object: 'backups/20261206-120000F/backup.json' }, trusted)
      .status,
    'invalid',
  );
  assert.equal(checkRecordSignature(signed, { ...where, systemId: '1' }, trusted).status, 'invalid');
  assert.equal(checkRecordSignature(signed, where, new Map()).status, 'untrusted');
  assert.equal(
    checkRecordSignature({ ...signed, signature: { alg: 'none' } }, where, trusted).status,
    'invalid',
  );
});

test('timeline history files and the stream state are signed; a changed or unrecorded one is refused', async () => {
  const store = new FsObjectStore(path.join(dir, 'history'));
  const repository = await newRepository(store);
  const history = Buffer.from('1\t0/3000000\tno recovery target specified\n');
  await storeHistory(repository, 2, history);
  await writeStreamState(repository, {
    timeline: 2,
    flushedLsn: '0/3000100',
    caughtUpAt: '2026-12-05T12:00:00.000Z',
    updatedAt: '2026-12-05T12:00:00.000Z',
  });
  const inventory = await readWalInventory(await Repository.open(store, trust()));
  assert.deepEqual(inventory.histories, [2]);
  assert.equal(inventory.streamState?.flushedLsn, '0/3000100');

  await store.putBuffer(historyKey(2), Buffer.from('1\t0/4000000\tno recovery target specified\n'));
  await assert.rejects(readWalInventory(await Repository.open(store, trust())), (error) => {
    assert.ok(isWardenError(error, 'WARDEN_E_SIGNATURE_INVALID'));
    assert.equal(error.details.object, historyKey(2));
    return true;
  });
  const verified = await verifyRepository({ store, keys: trust() });
  assert.ok(verified.problems.some((p) => p.kind === 'corrupt' && p.object === historyKey(2)));

  await store.delete(historyRecordKey(2));
  await assert.rejects(readWalInventory(await Repository.open(store, trust())), (error) =>
    isWardenError(error, 'WARDEN_E_UNSIGNED'),
  );
  const warned: string[] = [];
  const allowed = await readWalInventory(
    await Repository.open(store, trust({ allowUnsigned: true, onUnsigned: (object) => warned.push(object) })),
  );
  assert.deepEqual([allowed.histories, warned], [[2], [historyKey(2)]]);

  const state = JSON.parse((await store.getBuffer(STREAM_STATE_KEY)).toString()) as { flushedLsn: string };
  state.flushedLsn = '0/9000000';
  await store.putBuffer(STREAM_STATE_KEY, Buffer.from(JSON.stringify(state)));
  await store.putBuffer(historyRecordKey(2), Buffer.from('{}'));
  const report = await verifyRepository({ store, keys: trust({ allowUnsigned: true }) });
  assert.deepEqual(
    report.problems.filter((p) => p.kind === 'signature').map((p) => p.object),
    [STREAM_STATE_KEY],
    'an unsigned history record passes under allowUnsigned; a changed signed state does not',
  );
});

test('S3: a forged backup record is refused by restore and repo copy before anything is written', async () => {
  const store = await s3.newStore();
  const repository = await newRepository(store);
  const record = sampleRecord();
  await commitBackup(repository, record);
  assert.equal((await listBackups(await Repository.open(store, trust()))).length, 1);

  const key = `backups/${record.id}/backup.json`;
  const forged = JSON.parse((await store.getBuffer(key)).toString()) as BackupRecord;
  forged.archives[0]!.sha256 = 'c'.repeat(64);
  await store.putBuffer(key, Buffer.from(JSON.stringify(forged, null, 2)));

  const targetDir = path.join(dir, 's3-restore-target');
  // The server's OS user must be able to reach the target (restore checks that first).
  await chmod(dir, 0o711);
  await mkdir(targetDir, { mode: 0o700 });
  await assert.rejects(
    restore({ store, target: { kind: 'latest' }, targetDir, keys: trust() }),
    (error) => isWardenError(error, 'WARDEN_E_SIGNATURE_INVALID') && error.details.object === key,
  );
  assert.deepEqual(await readdir(targetDir), []);

  const copyTarget = path.join(dir, 's3-copy-target');
  await assert.rejects(copyRepository(store, new FsObjectStore(copyTarget), { keys: trust() }), (error) =>
    isWardenError(error, 'WARDEN_E_SIGNATURE_INVALID'),
  );
  assert.deepEqual(await new FsObjectStore(copyTarget).list(''), [], 'nothing reached the copy target');
});
