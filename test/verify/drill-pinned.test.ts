import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { writeHeartbeat } from '../../src/postgres/heartbeat.ts';
import { connectionFromUrl, type ConnectionConfig } from '../../src/postgres/connection-config.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { verifyRestore } from '../../src/verify/restore-check.ts';
import { parseLsn, type Lsn } from '../../src/wal/lsn.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';

/**
 * The restore a drill runs is pinned to a WAL position: with a stream running, commits made after
 * that position are in the repository by the time the restore runs, and must not be replayed.
 */

let cluster: TestCluster;
let store: FsObjectStore;
let connection: ConnectionConfig;
const abort = new AbortController();
let receiverDone: Promise<void>;
let flushed: Lsn = 0n;

before(async () => {
  cluster = await startCluster();
  store = new FsObjectStore(path.join(cluster.workDir, 'repo'));
  connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' };
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
});
after(async () => {
  abort.abort();
  await receiverDone;
  await cluster?.stop();
});

async function durableBeyond(lsn: Lsn): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (flushed < lsn) {
    if (Date.now() > deadline) assert.fail(`the stream did not flush past ${lsn}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('a restore pinned before a WAL position leaves out commits the stream delivered after it', async () => {
  const { early, position, late } = await withClient(cluster.url(), async (client) => {
    const early = await writeHeartbeat(client);
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const late = await writeHeartbeat(client);
    const end = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    await durableBeyond(parseLsn(end.rows[0]!.lsn));
    return { early, position: parseLsn(rows[0]!.lsn), late };
  });
  assert.ok(late > early);
  const pinned = await verifyRestore({
    store,
    connection,
    target: { kind: 'lsn', lsn: position, before: true },
    scratch: { scratchDir: cluster.workDir },
  });
  assert.ok(pinned.passed, JSON.stringify(pinned.checks, null, 2));
  assert.equal(pinned.restoredHeartbeat, early.toISOString());
  const latest = await verifyRestore({
    store,
    connection,
    target: { kind: 'latest' },
    scratch: { scratchDir: cluster.workDir },
  });
  assert.equal(latest.restoredHeartbeat, late.toISOString(), 'the later commit is in the repository');
});
