import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { compareCopy } from '../../src/copy/copy-comparison.ts';
import { transitionStorageClasses } from '../../src/copy/storage-transition.ts';
import { isWardenError } from '../../src/errors.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { listBackups, type BackupRecord } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { copyRepository } from '../../src/repository/repository-copy.ts';
import { Repository } from '../../src/repository/repository.ts';
import type { S3ObjectStore } from '../../src/repository/s3/s3-object-store.ts';
import { runWarden } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { startFaultProxy, startS3, type FaultProxy, type TestS3 } from '../harness/s3.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { failingStore } from './failing-store.ts';

/**
 * Copies of one real backup: commit order under a failure, the storage class asked for at
 * upload and by the transition job (seen in the requests: the test S3 server has no classes),
 * and a read that S3 answers with InvalidObjectState (injected by the fault proxy).
 */

let cluster: TestCluster;
let s3: TestS3;
let proxy: FaultProxy;
let source: FsObjectStore;
let backup: BackupRecord;
const dirs: string[] = [];
const stores: S3ObjectStore[] = [];
const DAY = 86_400_000;

before(async () => {
  [cluster, s3] = await Promise.all([startCluster(), startS3()]);
  proxy = await startFaultProxy(s3);
  const dir = await tempDir('copy-source');
  dirs.push(dir);
  source = new FsObjectStore(dir);
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  await cluster.query('CREATE TABLE t AS SELECT generate_series(1, 1000) AS id');
  await takeBackup({ connection, store: source, compression: 'zstd' });
  backup = (await listBackups(await Repository.open(source)))[0]!;
});
after(async () => {
  for (const store of stores) store.destroy();
  await proxy?.stop();
  await Promise.all([cluster?.stop(), s3?.stop()]);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function proxiedStore(): Promise<S3ObjectStore> {
  const store = await s3.newStore({
    endpoint: proxy.endpoint,
    retry: { maxAttempts: 2, baseDelayMs: 20, maxDelayMs: 100 },
  });
  stores.push(store);
  return store;
}

const objectPath = (key: string) => (url: string) =>
  decodeURIComponent(url.split('?')[0]!).endsWith(`/${key}`);

test('a copy cut off inside a backup shows no committed backup; the next pass completes it', async () => {
  const dir = await tempDir('copy-target');
  dirs.push(dir);
  const archive = backup.archives.at(-1)!.key;
  const target = failingStore(new FsObjectStore(dir), (key) => key === archive);
  await assert.rejects(copyRepository(source, target), (e) => isWardenError(e, 'WARDEN_E_REPO_IO'));
  assert.deepEqual(target.refused, [archive]);
  const cut = await Repository.open(new FsObjectStore(dir));
  assert.deepEqual(await listBackups(cut), [], 'no backup is committed in the copy');
  assert.equal(await cut.store.stat(`backups/${backup.id}/backup.json`), undefined);
  // `warden status` (no daemon) compares by commit markers: the backup is missing, and the lag is its age.
  const behind = await compareCopy('second', source, new FsObjectStore(dir));
  assert.deepEqual(behind.missing, { backups: 1, segments: 0, dumps: 0 });
  assert.ok(behind.lagSeconds! > 0);

  target.down = false;
  const report = await copyRepository(source, target);
  assert.deepEqual(report.backups, [backup.id]);
  assert.deepEqual(
    (await listBackups(await Repository.open(new FsObjectStore(dir)))).map((b) => b.id),
    [backup.id],
  );
  const caughtUp = await compareCopy('second', source, new FsObjectStore(dir));
  assert.deepEqual([caughtUp.missing, caughtUp.lagSeconds], [{ backups: 0, segments: 0, dumps: 0 }, 0]);
  const again = await copyRepository(source, target);
  assert.deepEqual([again.backups.length, again.segments, again.bytes], [0, 0, 0], 'idempotent');
});

test('an object old enough for a rule is uploaded in its class; records stay in the default class', async () => {
  const target = await proxiedStore();
  const from = proxy.requests.length;
  await copyRepository(source, target, {
    storageClasses: [{ olderThanMs: 30 * DAY, storageClass: 'STANDARD_IA' }],
    now: new Date(Date.parse(backup.endTime) + 31 * DAY),
  });
  const writes = proxy.requests.slice(from).filter((r) => r.method === 'PUT' || r.method === 'POST');
  for (const object of [...backup.archives, backup.manifest]) {
    const upload = writes.find((r) => objectPath(object.key)(r.url) && !r.url.includes('partNumber='));
    assert.equal(upload?.storageClass, 'STANDARD_IA', `${object.key} asked for STANDARD_IA`);
  }
  const marker = writes.find((r) => objectPath(`backups/${backup.id}/backup.json`)(r.url));
  assert.ok(marker, 'the commit marker was written');
  assert.equal(marker.storageClass, undefined);
  assert.equal(await target.storageClassOf(backup.manifest.key), 'STANDARD_IA');
});

test('a young object is uploaded without a class', async () => {
  const target = await proxiedStore();
  const from = proxy.requests.length;
  await copyRepository(source, target, {
    storageClasses: [{ olderThanMs: 30 * DAY, storageClass: 'STANDARD_IA' }],
  });
  const classes = proxy.requests.slice(from).filter((r) => r.storageClass);
  assert.deepEqual(classes, []);
});

test('the transition job moves aged objects by CopyObject onto themselves, once; an archived object reads as WARDEN_E_OBJECT_ARCHIVED', async () => {
  const target = await proxiedStore();
  await copyRepository(source, target);
  const rules = [
    { olderThanMs: 30 * DAY, storageClass: 'STANDARD_IA' },
    { olderThanMs: 90 * DAY, storageClass: 'GLACIER' },
  ];
  const from = proxy.requests.length;
  const now = new Date(Date.parse(backup.endTime) + 100 * DAY);
  const report = await transitionStorageClasses(target, rules, { now });
  const moved = report.moved.map((m) => m.key);
  for (const object of [...backup.archives, backup.manifest])
    assert.ok(moved.includes(object.key), object.key);
  assert.ok(report.moved.every((m) => m.from === 'STANDARD' && m.to === 'GLACIER'));
  const copies = proxy.requests.slice(from).filter((r) => r.copySource);
  assert.equal(copies.length, report.moved.length);
  assert.ok(copies.every((r) => r.method === 'PUT' && r.storageClass === 'GLACIER'));
  assert.equal(await target.storageClassOf(backup.manifest.key), 'GLACIER');
  assert.ok(!moved.some((key) => key.endsWith('.json')), 'records are never moved');

  const second = await transitionStorageClasses(target, rules, { now });
  assert.deepEqual(second.moved, [], 'a second run moves nothing');

  // S3 answers a GET of a GLACIER object with 403 InvalidObjectState; s3rver does not, so the
  // fault proxy injects it.
  const archive = backup.archives[0]!.key;
  proxy.setFaults([
    {
      match: (r) => r.method === 'GET' && objectPath(archive)(r.url),
      fault: { kind: 'status', status: 403, code: 'InvalidObjectState' },
      times: 1,
    },
  ]);
  await assert.rejects(target.getBuffer(archive), (e) => {
    assert.ok(isWardenError(e, 'WARDEN_E_OBJECT_ARCHIVED'), String(e));
    assert.deepEqual(e.details?.objects, [archive]);
    return true;
  });
  proxy.setFaults([]);

  // `warden info` shows the rules and each backup's class (from HeadObject).
  const dir = await tempDir('copy-info');
  dirs.push(dir);
  await writeFile(
    path.join(dir, 'warden.yaml'),
    `repository:\n  path: ${target.location}\ndaemon:\n  storageClasses:\n    - { olderThan: 90d, class: GLACIER }\n`,
  );
  const info = await runWarden(['info', '--json', '--allow-unsigned'], {
    cwd: dir,
    env: {
      AWS_ENDPOINT_URL: s3.endpoint,
      AWS_REGION: s3.region,
      AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
    },
  });
  assert.equal(info.code, 0, info.stdout + info.stderr);
  const storage = (
    JSON.parse(info.stdout) as {
      clusters: Array<{
        storage: { rules: unknown[]; backups: Array<{ id: string; storageClass: string }> };
      }>;
    }
  ).clusters[0]!.storage;
  assert.deepEqual(storage.rules, [{ olderThanMs: 90 * DAY, storageClass: 'GLACIER' }]);
  assert.deepEqual(storage.backups, [{ id: backup.id, storageClass: 'GLACIER' }]);
});
