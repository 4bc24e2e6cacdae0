import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { listBackups } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory } from '../../src/repository/wal-archive.ts';
import { restorableWindow } from '../../src/repository/restorable-window.ts';
import { parseLsn, type Lsn } from '../../src/wal/lsn.ts';
import { withRestored } from '../harness/restored.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { connectionOf, killHard, sleep, spawnFixture, withClient } from './helpers.ts';

const ROWS_PER_BATCH = 500;
let cluster: TestCluster;
let repoDir: string;
let store: FsObjectStore;
let child: ChildProcess | undefined;
const abort = new AbortController();

before(async () => {
  cluster = await startCluster();
  repoDir = path.join(cluster.workDir, 'repo');
  store = new FsObjectStore(repoDir);
  await cluster.query('CREATE TABLE w (batch int NOT NULL, n int NOT NULL, pad text NOT NULL)');
  await takeBackup({ connection: connectionOf(cluster), store, slotName: 'warden', compression: 'zstd' });
});
after(async () => {
  if (child) await killHard(child);
  abort.abort();
  await cluster?.stop();
});

async function currentLsn(): Promise<Lsn> {
  const [row] = await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(row!.lsn);
}

/** Commits batches of rows (~200 kB of WAL each) one after another until stopped. */
function startWriter() {
  const committed: number[] = [];
  let stopping = false;
  const done = withClient(cluster.url(), async (client) => {
    for (let batch = 1; !stopping; batch += 1) {
      await client.query(
        `INSERT INTO w SELECT $1::int, g, repeat(md5(g::text || $1::text), 8) FROM generate_series(1, ${ROWS_PER_BATCH}) g`,
        [batch],
      );
      committed.push(batch);
    }
  });
  done.catch(() => undefined); // reported by stop()
  return {
    committed,
    async stop() {
      stopping = true;
      await done;
    },
  };
}

test('a WAL receiver killed with SIGKILL mid-stream is resumed by a new one without a gap', async () => {
  const writer = startWriter();
  const startLsn = await currentLsn();
  child = spawnFixture('wal-receiver.ts', { url: cluster.url(), repoDir, slotName: 'warden' });
  let childFlushed = 0n;
  child.stdout!.on('data', (chunk: Buffer) => {
    const last = chunk.toString().trim().split('\n').at(-1)!;
    if (last.startsWith('flushed ')) childFlushed = parseLsn(last.slice(8));
  });
  // Let the child receive across at least one segment boundary before killing it.
  const deadline = Date.now() + 30_000;
  while (childFlushed < startLsn + 20n * 1024n * 1024n && Date.now() < deadline) await sleep(20);
  assert.ok(childFlushed > startLsn, 'the child received WAL');
  await killHard(child);
  const committedAtKill = writer.committed.length;
  await sleep(1_000);

  let flushed = 0n;
  const receiver = new WalReceiver({
    connection: connectionOf(cluster),
    store,
    slotName: 'warden',
    signal: abort.signal,
    onFlush: (lsn) => (flushed = lsn),
  });
  const running = receiver.run();
  await sleep(1_000);
  await writer.stop();
  assert.ok(writer.committed.length > committedAtKill, 'rows were committed after the kill too');
  const target = await currentLsn();
  const caughtUp = Date.now() + 30_000;
  while (flushed < target && Date.now() < caughtUp) await sleep(50);
  abort.abort();
  await running;
  assert.ok(flushed >= target, 'the new receiver caught up with the server');

  const repository = await Repository.open(store);
  const segmentSize = repository.meta.walSegmentSize;
  const inventory = await readWalInventory(repository);
  const window = restorableWindow(await listBackups(repository), inventory, segmentSize);
  assert.deepEqual(window.gaps, []);
  const segments = inventory.segments.get(1)!;
  for (let i = 1; i < segments.length; i += 1) {
    assert.equal(
      parseLsn(segments[i]!.startLsn) - parseLsn(segments[i - 1]!.startLsn),
      BigInt(segmentSize),
      'segments contiguous',
    );
  }
  assert.ok(parseLsn(window.latestLsn!) >= target, 'the archive reaches the last commit');

  const rows = await withRestored(
    cluster,
    store,
    'restored',
    { kind: 'latest' },
    async (client) =>
      (
        await client.query<{ batch: number; n: string }>(
          'SELECT batch, count(*) AS n FROM w GROUP BY batch ORDER BY batch',
        )
      ).rows,
  );
  assert.deepEqual(
    rows.map((r) => r.batch),
    writer.committed,
    'every batch committed before and after the kill',
  );
  assert.ok(
    rows.every((r) => Number(r.n) === ROWS_PER_BATCH),
    'every batch complete',
  );
});
