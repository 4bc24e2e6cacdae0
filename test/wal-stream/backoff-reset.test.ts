import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { ReplicationClient } from '../../src/postgres/replication-client.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

// Issue 11, item 8: the receiver's reconnect backoff starts over after a healthy session (one that
// made new WAL durable), and grows only across sessions that get nowhere. The faults are real:
// the server terminates the receiver's walsender, or another connection holds the slot.

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster();
  await cluster.query('CREATE TABLE t (id int)');
});
after(async () => cluster?.stop());

interface Interruption {
  msg: string;
  code: string;
  attempt: number;
  delayMs: number;
}

function capturingLogger() {
  const lines: Interruption[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const entry = JSON.parse(chunk.toString()) as Interruption;
      if (entry.msg.startsWith('WAL stream interrupted')) lines.push(entry);
      done();
    },
  });
  return { logger: pino({ level: 'warn' }, sink), lines };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => Promise<boolean> | boolean): Promise<void> {
  while (!(await condition())) await sleep(50);
}

async function currentLsn(): Promise<bigint> {
  const [row] = await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(row!.lsn);
}

/** File descriptors of this process open on a partial segment of `dir`. */
function openPartials(dir: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      return target.startsWith(dir) && target.endsWith('.partial');
    } catch {
      return false;
    }
  }).length;
}

const connection = () => ({ ...connectionFromUrl(cluster.url()), tls: 'disable' as const });

test('the reconnect backoff starts over after each healthy session, and no partial-segment handle leaks', async () => {
  const dir = path.join(cluster.workDir, 'repo-backoff');
  const store = new FsObjectStore(dir);
  const { logger, lines } = capturingLogger();
  const abort = new AbortController();
  let flushed = 0n;
  const receiver = new WalReceiver({
    connection: connection(),
    store,
    slotName: 'warden_backoff',
    logger,
    signal: abort.signal,
    onFlush: (lsn) => (flushed = lsn),
  });
  const running = receiver.run();
  try {
    for (let kill = 1; kill <= 6; kill += 1) {
      await cluster.query('INSERT INTO t SELECT generate_series(1, 1000)');
      const target = await currentLsn();
      await until(() => flushed >= target);
      await cluster.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name LIKE 'warden:%'",
      );
      await until(() => lines.length >= kill);
    }
    await until(() => receiver.status().state === 'streaming');
    assert.equal(lines.length, 6);
    // Every interruption followed a session that made new WAL durable: each is a first attempt
    // (0.5 s ± 50 %), not the sixth of a series (16 s ± 50 %).
    assert.deepEqual(
      lines.map((line) => line.attempt),
      [0, 0, 0, 0, 0, 0],
    );
    for (const line of lines) assert.ok(line.delayMs <= 750, `delay ${line.delayMs} ms`);
    assert.ok(openPartials(dir) <= 1, `${openPartials(dir)} handles open on partial segments`);
  } finally {
    abort.abort();
    await running;
  }
});

test('sessions that get nowhere (the slot is held elsewhere) back off further each time', async () => {
  const dir = path.join(cluster.workDir, 'repo-backoff');
  const store = new FsObjectStore(dir);
  const [row] = await cluster.query<{ lsn: string }>(
    "SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'warden_backoff'",
  );
  const foreign = await ReplicationClient.connect(connection());
  const holding = foreign.stream(`START_REPLICATION SLOT "warden_backoff" PHYSICAL ${row!.lsn} TIMELINE 1`);
  const drained = (async () => {
    for await (const event of holding.events) void event;
  })().catch(() => undefined);
  const { logger, lines } = capturingLogger();
  const abort = new AbortController();
  const receiver = new WalReceiver({
    connection: connection(),
    store,
    slotName: 'warden_backoff',
    logger,
    signal: abort.signal,
  });
  const running = receiver.run();
  try {
    await until(() => lines.length >= 3);
    assert.deepEqual(
      lines.slice(0, 3).map((line) => [line.code, line.attempt]),
      [
        ['WARDEN_E_SLOT_BUSY', 0],
        ['WARDEN_E_SLOT_BUSY', 1],
        ['WARDEN_E_SLOT_BUSY', 2],
      ],
    );
    assert.match(receiver.status().waitingFor ?? '', /the slot to be released/);
  } finally {
    abort.abort();
    await running;
    foreign.destroy();
    await drained;
  }
});
