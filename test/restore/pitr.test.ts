import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import type { RestoreTarget } from '../../src/restore/restore-planner.ts';
import { createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import type { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { restoredLedger } from '../harness/restored.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { streamInto, type StreamingRepository } from '../harness/streaming.ts';

let cluster: TestCluster;
let stream: StreamingRepository<FsObjectStore>;
const commits: Array<{ id: number; before: number; after: number }> = [];

before(async () => {
  cluster = await startCluster();
  await withClient(cluster.url(), (client) => createLedger(client));
  stream = streamInto(cluster);
  await takeBackup({
    connection: stream.connection,
    store: stream.store,
    slotName: stream.slotName,
    compression: 'zstd',
  });
  await withClient(cluster.url(), async (client) => {
    for (let i = 0; i < 30; i += 1) {
      const before = Date.now();
      const done = await randomTransfer(client);
      commits.push({ id: done.id, before, after: Date.now() });
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
  });
  await stream.waitForArchive();
});

after(async () => {
  await stream?.stop();
  await cluster?.stop();
});

const restoreAndCheck = (name: string, target: RestoreTarget) =>
  restoredLedger(cluster, stream.store, name, target);

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
