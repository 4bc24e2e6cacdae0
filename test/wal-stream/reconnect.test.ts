import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory } from '../../src/repository/wal-archive.ts';
import { restorableWindow } from '../../src/repository/restorable-window.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster();
});
after(async () => cluster?.stop());

async function currentLsn(): Promise<bigint> {
  const [row] = await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(row!.lsn);
}

test('the WAL receiver reconnects after a server restart and leaves no gap', async () => {
  const store = new FsObjectStore(path.join(cluster.workDir, 'repo-reconnect'));
  const abort = new AbortController();
  let flushed = 0n;
  const receiver = new WalReceiver({
    connection: { ...connectionFromUrl(cluster.url()), tls: 'disable' },
    store,
    slotName: 'warden_reconnect',
    signal: abort.signal,
    onFlush: (lsn) => (flushed = lsn),
  });
  const running = receiver.run();
  const waitFor = async (lsn: bigint) => {
    const deadline = Date.now() + 30_000;
    while (flushed < lsn && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(flushed >= lsn, `flushed ${flushed} < ${lsn}`);
  };
  try {
    await cluster.query('CREATE TABLE a AS SELECT generate_series(1, 200000) AS id');
    await waitFor(await currentLsn());
    await cluster.instance.stop({ mode: 'fast' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    await cluster.instance.start();
    await cluster.query('CREATE TABLE b AS SELECT generate_series(1, 200000) AS id');
    await cluster.query('SELECT pg_switch_wal()');
    await waitFor(await currentLsn());
    const repository = await Repository.open(store);
    const window = restorableWindow([], await readWalInventory(repository), repository.meta.walSegmentSize);
    assert.deepEqual(window.gaps, []);
  } finally {
    abort.abort();
    await running;
  }
});
