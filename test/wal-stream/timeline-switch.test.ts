import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readHistory, readWalInventory, storeHistory } from '../../src/repository/wal-archive.ts';
import { restore } from '../../src/restore/restore.ts';
import { formatLsn, parseLsn } from '../../src/wal/lsn.ts';
import { isWardenError } from '../../src/errors.ts';
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

// Runs after the promotion above: the replica serves timeline 2. A repository that holds another
// "timeline 2" (a member promoted elsewhere without seeing this one's history) must not get this
// server's WAL under the same segment names.
test('a server whose timeline has another history than the repository holds under that ID is refused (timeline collision)', async () => {
  const connection = { ...connectionFromUrl(pair.replica.url()), tls: 'disable' as const };
  const store = new FsObjectStore(path.join(pair.primary.workDir, 'repo-collision'));
  // A backup on timeline 2 archives the server's history of it; then the repository's copy is
  // replaced by another history under the same ID (signed as the repository signs: not a forgery).
  const { backup } = await takeBackup({ connection, store, compression: 'zstd' });
  assert.equal(backup.timeline, 2);
  const repository = await Repository.open(store);
  const own = (await readHistory(repository, 2)).toString('utf8');
  const [, fork] = /^1\t(\S+)/m.exec(own)!;
  const other = `1\t${formatLsn(parseLsn(fork!) - 0x100000n)}\tno recovery target specified\n`;
  await storeHistory(repository, 2, Buffer.from(other));

  // Bounded: a receiver that accepted the server would stream until stopped (and resolve).
  const receiver = new WalReceiver({
    connection,
    store,
    slotName: 'warden_collision',
    signal: AbortSignal.timeout(60_000),
  });
  await assert.rejects(receiver.run(), (error: unknown) => {
    assert.ok(isWardenError(error, 'WARDEN_E_TIMELINE_COLLISION'), String(error));
    assert.equal(error.details.timeline, 2);
    assert.match(String(error.details.server), new RegExp(`at ${fork}$`));
    return true;
  });
  assert.equal(receiver.status().state, 'failed');
});
