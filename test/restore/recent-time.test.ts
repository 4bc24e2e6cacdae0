import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import type { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory } from '../../src/repository/wal-archive.ts';
import { sleep } from '../faults/helpers.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { restoredLedger } from '../harness/restored.ts';
import { streamInto, type StreamingRepository } from '../harness/streaming.ts';

/**
 * While the stream runs, the window's end follows the durable point (issue 12, item 2): a time a
 * couple of seconds old is restorable whether or not anything was committed since.
 */
let cluster: TestCluster;
let stream: StreamingRepository<FsObjectStore>;
const committed: Array<{ id: number; after: number }> = [];

before(async () => {
  cluster = await startCluster();
  await withClient(cluster.url(), (client) => createLedger(client));
  stream = streamInto(cluster);
  await takeBackup({
    connection: stream.connection,
    store: stream.store,
    slotName: 'warden',
    compression: 'zstd',
  });
});

after(async () => {
  await stream?.stop();
  await cluster?.stop();
});

const ids = (until: number) => committed.filter((c) => c.after <= until).map((c) => c.id);

test('quiet server: a time 2 s old, long after the last commit, restores (nothing since is missing)', async () => {
  await withClient(cluster.url(), async (client) => {
    const done = await randomTransfer(client);
    committed.push({ id: done.id, after: Date.now() });
  });
  const lastCommit = Date.now();
  await sleep(3500);
  const target = new Date(Date.now() - 2000);
  assert.ok(target.getTime() > lastCommit + 1000, 'the target lies well after the last commit');
  const state = (await readWalInventory(await Repository.open(stream.store))).streamState;
  assert.ok(state && Date.parse(state.caughtUpAt) >= target.getTime(), `stream state ${state?.caughtUpAt}`);
  const ledger = await restoredLedger(cluster, stream.store, 'recent-quiet', { kind: 'time', time: target });
  assert.deepEqual(ledger.transfers, ids(target.getTime()));
  assert.ok(ledger.balanced && ledger.consistent);
});

test('busy server: a time 2 s old restores exactly the commits made by then', async () => {
  const abort = new AbortController();
  const load = withClient(cluster.url(), async (client) => {
    while (!abort.signal.aborted) {
      const done = await randomTransfer(client);
      committed.push({ id: done.id, after: Date.now() });
      await sleep(20);
    }
  });
  try {
    await sleep(3000);
    const target = new Date(Date.now() - 2000);
    const ledger = await restoredLedger(cluster, stream.store, 'recent-busy', { kind: 'time', time: target });
    // A prefix of the commits: every one confirmed before the target, none begun after it.
    const all = committed.map((c) => c.id);
    assert.deepEqual(ledger.transfers, all.slice(0, ledger.transfers.length));
    assert.ok(
      ledger.transfers.length >= ids(target.getTime()).length,
      `${ledger.transfers.length} restored, ${ids(target.getTime()).length} confirmed before the target`,
    );
    assert.ok(ledger.transfers.length < all.length, 'commits after the target are not restored');
    assert.ok(ledger.balanced && ledger.consistent);
  } finally {
    abort.abort();
    await load;
  }
});
