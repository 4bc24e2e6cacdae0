import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { checkLedger, createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { restore } from '../../src/restore/restore.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;
let store: FsObjectStore;
const abort = new AbortController();
let receiverDone: Promise<void>;
let flushed = 0n;
const commits: Array<{ id: number; before: number; after: number }> = [];

before(async () => {
  cluster = await startCluster();
  store = new FsObjectStore(path.join(cluster.workDir, 'repo'));
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  await withClient(cluster.url(), (client) => createLedger(client));
  const receiver = new WalReceiver({
    connection,
    store,
    slotName: 'warden',
    signal: abort.signal,
    onFlush: (lsn) => (flushed = lsn),
  });
  receiverDone = receiver.run().catch((error) => {
    if (!abort.signal.aborted) throw error;
  });
  await takeBackup({ connection, store, slotName: 'warden', compression: 'zstd' });
  await withClient(cluster.url(), async (client) => {
    for (let i = 0; i < 30; i += 1) {
      const before = Date.now();
      const done = await randomTransfer(client);
      commits.push({ id: done.id, before, after: Date.now() });
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const target = parseLsn(rows[0]!.lsn);
    const deadline = Date.now() + 30_000;
    while (flushed < target && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  });
});

after(async () => {
  abort.abort();
  await receiverDone;
  await cluster?.stop();
});

async function restoreAndCheck(name: string, target: Parameters<typeof restore>[0]['target']) {
  const targetDir = path.join(cluster.workDir, name);
  const report = await restore({ store, target, targetDir, start: true }).catch((e) => {
    console.error(e.details?.log);
    throw e;
  });
  const instance = new LocalInstance({
    binaries: cluster.instance.binaries,
    dataDir: targetDir,
    port: report.port!,
  });
  try {
    return await withClient(cluster.url().replace(`:${cluster.port}/`, `:${report.port}/`), (client) =>
      checkLedger(client),
    );
  } finally {
    await instance.stop({ mode: 'immediate' });
  }
}

test('restores to points in time find exactly the transfers committed by then, ledger balanced', async () => {
  for (const index of [4, 17]) {
    const commit = commits[index]!;
    const next = commits[index + 1]!;
    const time = new Date(Math.floor((commit.after + next.before) / 2));
    const ledger = await restoreAndCheck(`pitr-${index}`, { kind: 'time', time });
    assert.deepEqual(
      ledger.transfers,
      commits.slice(0, index + 1).map((c) => c.id),
      `target after transfer ${index}`,
    );
    assert.ok(ledger.balanced && ledger.consistent, 'ledger balanced');
  }
});

test('restore to latest finds every committed transfer', async () => {
  const ledger = await restoreAndCheck('latest', { kind: 'latest' });
  assert.deepEqual(
    ledger.transfers,
    commits.map((c) => c.id),
  );
  assert.ok(ledger.balanced && ledger.consistent);
});
