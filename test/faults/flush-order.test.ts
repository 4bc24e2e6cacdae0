import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import type { Appender } from '../../src/repository/object-store.ts';
import { formatLsn, parseLsn, parseSegmentName, type Lsn } from '../../src/wal/lsn.ts';
import { scanPartial } from '../../src/wal/partial-format.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { connectionOf, sleep, withClient } from './helpers.ts';

/**
 * The receiver may tell the server a position is flushed only once it is durable: the physical
 * slot then lets the server recycle the WAL before it. A SIGKILL keeps the page cache, so killing
 * the receiver cannot catch an acknowledgement sent before the fsync; this store does. Before each
 * sync of the partial segment it waits a little (an acknowledgement sent early reaches the server
 * meanwhile) and reads the slot's restart_lsn — which a physical walsender sets to the flush
 * position the receiver reports — and compares it with what earlier syncs made durable, computed
 * from the synced bytes themselves (the partial's complete frames), not from what the receiver says.
 */
const SEGMENT_SIZE = 16 * 1024 * 1024;
const ACK_TRAVEL_MS = 100;

let cluster: TestCluster;
let observer: pg.Client;
const abort = new AbortController();

before(async () => {
  cluster = await startCluster();
  observer = new pg.Client({ connectionString: cluster.url() });
  await observer.connect();
  await cluster.query('CREATE TABLE w (n int NOT NULL, pad text NOT NULL)');
});
after(async () => {
  abort.abort();
  await observer?.end();
  await cluster?.stop();
});

/** The repository's slot (the only one on this cluster): where the server keeps WAL from. */
async function slotRestartLsn(): Promise<Lsn> {
  const { rows } = await observer.query<{ lsn: string }>(
    "SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_type = 'physical'",
  );
  assert.equal(rows.length, 1, 'one slot');
  return parseLsn(rows[0]!.lsn);
}

/** Where the segment a partial-segment key names starts. */
function partialStart(key: string): Lsn {
  return parseSegmentName(key.slice(key.lastIndexOf('/') + 1, -'.partial'.length), SEGMENT_SIZE)!.startLsn;
}

/** A directory store whose partial segments report, before every sync, what the server was told. */
class AckWatchingStore extends FsObjectStore {
  /** Everything before this LSN has been synced (the slot's position when the test began). */
  durable: Lsn = 0n;
  syncsChecked = 0;
  readonly violations: string[] = [];

  override async openAppender(key: string): Promise<Appender> {
    const inner = await super.openAppender(key);
    const start = partialStart(key);
    // Appending continues a file a replacement (putBuffer, below) may have written.
    let written = inner.size > 0 ? await this.getBuffer(key) : Buffer.alloc(0);
    const checkAck = () => this.checkAck();
    const synced = (end: Lsn) => this.synced(end);
    return {
      get size() {
        return inner.size;
      },
      syncIntervalMs: inner.syncIntervalMs,
      async append(data) {
        await inner.append(data);
        written = Buffer.concat([written, data]);
      },
      async truncate(size) {
        await inner.truncate(size);
        written = written.subarray(0, size);
      },
      async sync() {
        await checkAck();
        await inner.sync();
        synced(start + BigInt(scanPartial(written, key, SEGMENT_SIZE).validBytes));
      },
      close: () => inner.close(),
    };
  }

  /**
   * A restream replaces an earlier run's partial segment in one atomic, synced write once it has
   * passed it: that write makes its frames durable too.
   */
  override async putBuffer(key: string, data: Buffer): Promise<void> {
    if (!key.endsWith('.partial')) return super.putBuffer(key, data);
    await this.checkAck();
    await super.putBuffer(key, data);
    this.synced(partialStart(key) + BigInt(scanPartial(data, key, SEGMENT_SIZE).validBytes));
  }

  private synced(end: Lsn): void {
    if (end > this.durable) this.durable = end;
  }

  /** What the server holds as flushed must already be durable, before this sync adds more. */
  private async checkAck(): Promise<void> {
    await sleep(ACK_TRAVEL_MS);
    const acked = await slotRestartLsn();
    this.syncsChecked += 1;
    if (acked > this.durable)
      this.violations.push(
        `the server was told ${formatLsn(acked)} is flushed while only ${formatLsn(this.durable)} was durable`,
      );
  }
}

test('the flush position reaches the server only after the bytes before it are synced', async () => {
  const repoDir = path.join(cluster.workDir, 'repo');
  // A first run creates the repository and its own slot, and acknowledges what it made durable.
  const [first] = await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  await new WalReceiver({
    connection: connectionOf(cluster),
    store: new FsObjectStore(repoDir),
    stopAtLsn: parseLsn(first!.lsn),
  }).run();
  const store = new AckWatchingStore(repoDir);
  store.durable = await slotRestartLsn();
  const startedAt = store.durable;
  let flushed = 0n;
  const receiver = new WalReceiver({
    connection: connectionOf(cluster),
    store,
    signal: abort.signal,
    onFlush: (lsn) => (flushed = lsn),
  });
  const running = receiver.run();
  // Commits one after another, so the receiver flushes (and acknowledges) many times.
  await withClient(cluster.url(), async (client) => {
    for (let batch = 0; batch < 40; batch += 1) {
      await client.query('INSERT INTO w SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 200) g');
      if (batch % 10 === 9) await client.query('SELECT pg_switch_wal()');
      await sleep(20);
    }
  });
  const [row] = await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  const target = parseLsn(row!.lsn);
  while (flushed < target) await sleep(50);
  // The last acknowledgement goes out with the next status update; wait for it to arrive.
  while ((await slotRestartLsn()) < target) await sleep(50);
  abort.abort();
  await running;

  assert.deepEqual(store.violations, []);
  assert.ok(store.syncsChecked >= 20, `${store.syncsChecked} syncs checked`);
  assert.ok((await slotRestartLsn()) > startedAt, 'the server was told of progress (the check can fail)');
});
