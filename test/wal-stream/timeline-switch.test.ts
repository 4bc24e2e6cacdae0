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
import { parseLsn } from '../../src/wal/lsn.ts';
import { withClient } from '../harness/postgres.ts';
import { startPrimaryWithReplica, type PrimaryWithReplica } from '../harness/replica.ts';

let pair: PrimaryWithReplica;

before(async () => {
  pair = await startPrimaryWithReplica();
});
after(async () => {
  await pair?.stop();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('the WAL receiver follows a timeline switch; a backup from the old timeline restores to latest across it', async () => {
  const store = new FsObjectStore(path.join(pair.primary.workDir, 'repo-tli'));
  const abort = new AbortController();
  const connection = { ...connectionFromUrl(pair.replica.url()), tls: 'disable' as const };
  let flushedTimeline = 0;
  let flushed = 0n;
  // Stream from the standby: when it is promoted, the server ends timeline 1 mid-stream.
  const receiver = new WalReceiver({
    connection,
    store,
    slotName: 'warden_tli',
    signal: abort.signal,
    onFlush: (lsn, timeline) => {
      flushedTimeline = timeline;
      flushed = lsn;
    },
  });
  const running = receiver.run();
  try {
    await pair.primary.query('CREATE TABLE before_switch AS SELECT generate_series(1, 1000) AS id');
    await pair.replica.waitForReplay();
    // A backup taken on timeline 1 (from the standby) ...
    const { backup } = await takeBackup({ connection, store, slotName: 'warden_tli', compression: 'zstd' });
    assert.equal(backup.timeline, 1);
    await pair.replica.promote();
    await pair.replica.query('CREATE TABLE after_switch AS SELECT generate_series(1, 1000) AS id');
    const [row] = await pair.replica.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const target = parseLsn(row!.lsn);
    const deadline = Date.now() + 30_000;
    while ((flushedTimeline < 2 || flushed < target) && Date.now() < deadline) await sleep(100);
    assert.equal(flushedTimeline, 2, 'receiver streams the new timeline');
    const inventory = await readWalInventory(await Repository.open(store));
    assert.ok(inventory.histories.includes(2), 'history file of timeline 2 archived');
    assert.ok(
      (inventory.segments.get(1)?.length ?? 0) >= 1,
      'timeline 1 segments archived (the last one cut)',
    );

    // ... restores to latest across the switch: WAL of timeline 1, then of timeline 2.
    const targetDir = path.join(pair.primary.workDir, 'restore-across-switch');
    const report = await restore({ store, target: { kind: 'latest' }, targetDir, start: true });
    assert.equal(report.backupId, backup.id);
    const restored = new LocalInstance({
      binaries: pair.primary.instance.binaries,
      dataDir: targetDir,
      port: report.port!,
    });
    try {
      const url = pair.primary.url().replace(`:${pair.primary.port}/`, `:${report.port}/`);
      const counts = await withClient(url, async (client) => {
        const before = await client.query<{ n: string }>('SELECT count(*)::text AS n FROM before_switch');
        const after = await client.query<{ n: string }>('SELECT count(*)::text AS n FROM after_switch');
        return [before.rows[0]!.n, after.rows[0]!.n];
      });
      assert.deepEqual(counts, ['1000', '1000']);
    } finally {
      await restored.stop({ mode: 'immediate' });
    }
  } finally {
    abort.abort();
    await running;
  }
});
