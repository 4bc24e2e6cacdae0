import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory } from '../../src/repository/wal-archive.ts';
import { restore } from '../../src/restore/restore.ts';
import { deleteBackup } from '../../src/retention/delete-backup.ts';
import { expire } from '../../src/retention/expire.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { withClient } from '../harness/postgres.ts';
import { startPrimaryWithReplica, type PrimaryWithReplica } from '../harness/replica.ts';

let pair: PrimaryWithReplica;
let store: FsObjectStore;
const abort = new AbortController();
let running: Promise<void>;
let flushed = { lsn: 0n, timeline: 0 };
let beforeSwitch: string;
let afterSwitch: string;

before(async () => {
  pair = await startPrimaryWithReplica();
  store = new FsObjectStore(path.join(pair.primary.workDir, 'repo-expire-tli'));
  // Stream from the standby: when it is promoted, the archive continues on timeline 2.
  const receiver = new WalReceiver({
    connection: { ...connectionFromUrl(pair.replica.url()), tls: 'disable' },
    store,
    signal: abort.signal,
    onFlush: (lsn, timeline) => (flushed = { lsn, timeline }),
  });
  running = receiver.run().catch((error) => {
    if (!abort.signal.aborted) throw error;
  });
  await pair.primary.query('CREATE TABLE before_switch AS SELECT generate_series(1, 1000) AS id');
  await pair.replica.waitForReplay();
  beforeSwitch = (
    await takeBackup({
      connection: { ...connectionFromUrl(pair.primary.url()), tls: 'disable' },
      store,
      compression: 'zstd',
      name: 'before-failover',
    })
  ).backup.id;
  await pair.replica.waitForReplay();
  await pair.replica.promote();
  await pair.replica.query('CREATE TABLE after_switch AS SELECT generate_series(1, 1000) AS id');
  const replicaConnection = { ...connectionFromUrl(pair.replica.url()), tls: 'disable' as const };
  afterSwitch = (await takeBackup({ connection: replicaConnection, store, compression: 'zstd' })).backup.id;
  await pair.replica.query('CREATE TABLE latest_rows AS SELECT generate_series(1, 77) AS id');
  await withClient(pair.replica.url(), async (client) => {
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const target = parseLsn(rows[0]!.lsn);
    const deadline = Date.now() + 30_000;
    while ((flushed.timeline < 2 || flushed.lsn < target) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
  });
});

after(async () => {
  abort.abort();
  await running;
  await pair?.stop();
});

test('after a failover, a kept backup of timeline 1 keeps its timeline 1 WAL; once it goes, only timeline 2 WAL and the history stay', async () => {
  const repository = await Repository.open(store);
  const first = await expire({ store, policy: { keepLast: 1 } });
  assert.deepEqual(
    first.plan.keep.map((b) => b.id),
    [beforeSwitch, afterSwitch],
  );
  const startOfNamed = first.plan.keep[0]!;
  assert.deepEqual(
    startOfNamed.reasons.map((r) => r.rule),
    ['named'],
  );
  let inventory = await readWalInventory(repository);
  assert.ok((inventory.segments.get(1)?.length ?? 0) > 0, 'timeline 1 WAL needed by the named backup stays');
  assert.ok(first.plan.walToDelete.every((s) => s.timeline === 1));

  await deleteBackup({ store, backup: 'before-failover' });
  const second = await expire({ store, policy: { keepLast: 1 } });
  assert.deepEqual(
    second.plan.keep.map((b) => [b.id, b.reasons[0]!.rule]),
    [[afterSwitch, 'newest-valid']],
  );
  inventory = await readWalInventory(repository);
  assert.equal(inventory.segments.get(1)?.length ?? 0, 0, 'timeline 1 WAL is gone');
  assert.ok((inventory.segments.get(2)?.length ?? 0) > 0 || inventory.partials.length > 0);
  assert.ok(inventory.histories.includes(2), 'the history file stays');

  const targetDir = path.join(pair.primary.workDir, 'restored-after-expire');
  const report = await restore({ store, target: { kind: 'latest' }, targetDir, start: true });
  const instance = new LocalInstance({
    binaries: pair.primary.instance.binaries,
    dataDir: targetDir,
    port: report.port!,
  });
  try {
    const url = pair.primary.url().replace(`:${pair.primary.port}/`, `:${report.port}/`);
    const counts = await withClient(url, async (client) => {
      const { rows } = await client.query<{ a: string; b: string; c: string }>(
        'SELECT (SELECT count(*) FROM before_switch) AS a, (SELECT count(*) FROM after_switch) AS b, (SELECT count(*) FROM latest_rows) AS c',
      );
      return rows[0]!;
    });
    assert.deepEqual([counts.a, counts.b, counts.c].map(Number), [1000, 1000, 77]);
  } finally {
    await instance.stop({ mode: 'immediate' });
  }
});
