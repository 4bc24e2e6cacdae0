import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { WardenError } from '../../src/errors.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import type { ObjectStore } from '../../src/repository/object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { copyRepository } from '../../src/repository/repository-copy.ts';
import { readWalInventory } from '../../src/repository/wal-archive.ts';
import type { S3ObjectStore } from '../../src/repository/s3/s3-object-store.ts';
import { restore } from '../../src/restore/restore.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { restoredLedger } from '../harness/restored.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { startFaultProxy, startS3, type FaultProxy, type TestS3 } from '../harness/s3.ts';

let cluster: TestCluster;
let s3: TestS3;
let proxy: FaultProxy;
let store: S3ObjectStore;
let bucket: string;
let prefix: string;
const abort = new AbortController();
let receiverDone: Promise<void>;
let flushed = 0n;
const commits: number[] = [];
const connection = () => ({ ...connectionFromUrl(cluster.url()), tls: 'disable' as const });

before(async () => {
  [cluster, s3] = await Promise.all([startCluster(), startS3()]);
  proxy = await startFaultProxy(s3);
  store = await s3.newStore();
  bucket = (store.location.match(/^s3:\/\/([^/]+)\/(.*)$/) ?? [])[1]!;
  prefix = (store.location.match(/^s3:\/\/([^/]+)\/(.*)$/) ?? [])[2]!;
  await withClient(cluster.url(), (client) => createLedger(client));
  const receiver = new WalReceiver({
    connection: connection(),
    store,
    slotName: 'warden',
    signal: abort.signal,
    onFlush: (lsn) => (flushed = lsn),
  });
  receiverDone = receiver.run().catch((error) => {
    if (!abort.signal.aborted) throw error;
  });
  await takeBackup({ connection: connection(), store, slotName: 'warden', compression: 'zstd' });
  await writeTransfers(20);
});

after(async () => {
  abort.abort();
  await receiverDone;
  store?.destroy();
  await proxy?.stop();
  await Promise.all([cluster?.stop(), s3?.stop()]);
});

async function writeTransfers(count: number): Promise<void> {
  await withClient(cluster.url(), async (client) => {
    for (let i = 0; i < count; i += 1) commits.push((await randomTransfer(client)).id);
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const target = parseLsn(rows[0]!.lsn);
    const deadline = Date.now() + 30_000;
    while (flushed < target && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  });
}

const restoreLatestLedger = (from: ObjectStore, name: string) => restoredLedger(cluster, from, name);

/** Ends the current WAL segment and waits until the receiver archived it (copies take archived WAL). */
async function switchAndArchive(): Promise<void> {
  const segment = await withClient(cluster.url(), async (client) => {
    const { rows } = await client.query<{ name: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS name');
    return rows[0]!.name;
  });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const inventory = await readWalInventory(await Repository.open(store));
    if ([...inventory.segments.values()].flat().some((record) => record.segment >= segment)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`segment ${segment} was not archived`);
}

test('restore from S3 gives the same ledger as from a directory copy of the same repository', async () => {
  await switchAndArchive();
  const fromS3 = await restoreLatestLedger(store, 'from-s3');
  assert.deepEqual(fromS3.transfers, commits);
  assert.ok(fromS3.balanced && fromS3.consistent);

  const dir = new FsObjectStore(path.join(cluster.workDir, 'copy-of-s3'));
  const report = await copyRepository(store, dir);
  assert.equal(report.backups.length, 1);
  assert.ok(report.segments > 0);
  const fromDir = await restoreLatestLedger(dir, 'from-dir');
  assert.deepEqual(fromDir, fromS3);
  assert.deepEqual(
    (await listBackups(await Repository.open(dir))).map((b) => b.id),
    (await listBackups(await Repository.open(store))).map((b) => b.id),
  );
  const again = await copyRepository(store, dir);
  assert.deepEqual([again.backups.length, again.segments], [0, 0], 'a second copy has nothing to do');
});

test('faults injected during backup uploads never leave a backup listed that cannot be restored', async () => {
  const isPart = (r: { method: string; url: string }) => r.method === 'PUT' && r.url.includes('partNumber=');
  const plans = [
    // recoverable: resets mid-part, 503s and slow answers within the retry budget
    [
      { match: isPart, fault: { kind: 'drop-mid-upload' as const, afterBytes: 1024 * 1024 }, times: 2 },
      { match: isPart, fault: { kind: 'status' as const, status: 503 }, times: 2 },
      { match: isPart, fault: { kind: 'slow' as const, delayMs: 400 }, times: 2 },
    ],
    // unrecoverable: every part upload fails until the retries are exhausted
    [{ match: isPart, fault: { kind: 'status' as const, status: 500 }, times: 1_000 }],
    // unrecoverable: connections reset mid-part, again and again
    [{ match: isPart, fault: { kind: 'drop-mid-upload' as const, afterBytes: 256 * 1024 }, times: 1_000 }],
  ];
  const proxied = await s3.newStore({
    bucket,
    prefix,
    endpoint: proxy.endpoint,
    partSize: 5 * 1024 * 1024,
    retry: { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 200 },
  });
  const outcomes: string[] = [];
  try {
    for (const plan of plans) {
      proxy.setFaults(plan);
      try {
        await takeBackup({
          connection: connection(),
          store: proxied,
          slotName: 'warden',
          compression: 'none',
        });
        outcomes.push('committed');
      } catch (error) {
        assert.ok(error instanceof WardenError, String(error));
        assert.equal(error.code, 'WARDEN_E_REPO_IO', error.message);
        outcomes.push('failed');
      }
      proxy.setFaults([]);
      await writeTransfers(2);
      for (const backup of await listBackups(await Repository.open(store))) {
        const targetDir = path.join(cluster.workDir, `check-${backup.id}-${outcomes.length}`);
        await restore({ store, target: { kind: 'backup', id: backup.id }, targetDir });
      }
    }
  } finally {
    proxied.destroy();
  }
  assert.deepEqual(outcomes, ['committed', 'failed', 'failed']);
  assert.ok((proxy.injected['drop-mid-upload'] ?? 0) >= 3);
  const listed = await listBackups(await Repository.open(store));
  assert.equal(listed.length, 2, 'the first backup and the one taken through recoverable faults');
});

test('the CLI reads an S3 repository from --repo s3://bucket/prefix and copies it with repo copy', async () => {
  const env = {
    AWS_ENDPOINT_URL: s3.endpoint,
    AWS_REGION: s3.region,
    AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
  };
  const url = `s3://${bucket}/${prefix}`;
  const listed = await warden(['backup', 'list', '--repo', url, '--json'], env);
  assert.equal(listed.code, 0, listed.stderr);
  assert.ok(!listed.stdout.includes(s3.credentials.secretAccessKey), 'no secret in the output');
  const dir = path.join(cluster.workDir, 'cli-copy');
  // The library wrote this repository without a signing key: repo copy refuses unsigned records
  // unless told to accept them (docs/security.md).
  const copied = await warden(
    ['repo', 'copy', '--repo', url, '--to', dir, '--allow-unsigned', '--json'],
    env,
  );
  assert.equal(copied.code, 0, copied.stderr);
  const report = JSON.parse(copied.stdout) as { backups: string[]; from: string };
  assert.equal(report.from, url);
  const ids = (await listBackups(await Repository.open(store))).map((b) => b.id);
  assert.deepEqual(report.backups, ids);
  const fromCopy = await warden(['backup', 'list', '--repo', dir, '--json'], {});
  assert.equal(fromCopy.code, 0, fromCopy.stderr);
  // Same backups; the window may end earlier on the copy, which takes archived WAL only.
  const backupsOf = (stdout: string) => (JSON.parse(stdout) as { backups: unknown }).backups;
  assert.deepEqual(backupsOf(fromCopy.stdout), backupsOf(listed.stdout));
});

function warden(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.resolve('bin/warden.js'), ...args],
      { env: { ...process.env, ...env }, cwd: cluster.workDir },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
