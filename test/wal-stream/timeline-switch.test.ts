import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory } from '../../src/repository/wal-archive.ts';
import { startPrimaryWithReplica, type PrimaryWithReplica } from '../harness/replica.ts';

let pair: PrimaryWithReplica;

before(async () => {
  pair = await startPrimaryWithReplica();
});
after(async () => {
  await pair?.stop();
});

test('the WAL receiver follows a timeline switch and archives the history file', async () => {
  const store = new FsObjectStore(path.join(pair.primary.workDir, 'repo-tli'));
  const abort = new AbortController();
  let flushedTimeline = 0;
  // Stream from the standby: when it is promoted, the server ends timeline 1 mid-stream.
  const receiver = new WalReceiver({
    connection: { ...connectionFromUrl(pair.replica.url()), tls: 'disable' },
    store,
    slotName: 'warden_tli',
    signal: abort.signal,
    onFlush: (_lsn, timeline) => (flushedTimeline = timeline),
  });
  const running = receiver.run().catch((error) => {
    if (!abort.signal.aborted) throw error;
  });
  try {
    await pair.primary.query('CREATE TABLE before_switch AS SELECT generate_series(1, 1000) AS id');
    await pair.replica.waitForReplay();
    await pair.replica.promote();
    await pair.replica.query('CREATE TABLE after_switch AS SELECT generate_series(1, 1000) AS id');
    const deadline = Date.now() + 30_000;
    while (flushedTimeline < 2 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(flushedTimeline, 2, 'receiver streams the new timeline');
    const inventory = await readWalInventory(await Repository.open(store));
    assert.ok(inventory.histories.includes(2), 'history file of timeline 2 archived');
    assert.ok(
      (inventory.segments.get(1)?.length ?? 0) >= 1,
      'timeline 1 segments archived (the last one cut at the switch)',
    );
  } finally {
    abort.abort();
    await running;
  }
});
