import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import type { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { restoredLedger } from '../harness/restored.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { streamInto, type StreamingRepository } from '../harness/streaming.ts';

// Warden's WAL receiver as the synchronous standby (docs/synchronous-standby.md): a commit
// returns only once Warden has flushed it, so every acknowledged commit is in the repository.
let cluster: TestCluster;
let stream: StreamingRepository<FsObjectStore>;
let applicationName: string;
const acknowledged: number[] = [];

/** Fails instead of hanging when a commit never returns (the bug remote_apply had). */
async function withinOneMinute<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not return within 60 s`)), 60_000);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function transfers(level: 'on' | 'remote_apply', count: number): Promise<void> {
  const client = new pg.Client({ connectionString: cluster.url() });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await client.query(`SET synchronous_commit = ${level}`);
    for (let i = 0; i < count; i += 1)
      acknowledged.push((await withinOneMinute(randomTransfer(client), `a ${level} commit`)).id);
  } finally {
    await client.end().catch(() => undefined);
  }
}

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
  const [row] = await cluster.query<{ name: string }>(
    "SELECT application_name AS name FROM pg_stat_replication WHERE application_name LIKE 'warden:%'",
  );
  applicationName = row!.name;
  // The recommended form: a quorum of one among the listed standbys (here Warden alone).
  await cluster.query(`ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 ("${applicationName}")'`);
  await cluster.query('SELECT pg_reload_conf()');
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const [state] = await cluster.query<{ sync: string }>(
      'SELECT sync_state AS sync FROM pg_stat_replication WHERE application_name = $1',
      [applicationName],
    );
    if (state?.sync === 'quorum') return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('Warden did not become a synchronous (quorum) standby');
});

after(async () => {
  await stream?.stop().catch(() => undefined);
  await cluster?.stop();
});

test('with Warden as synchronous standby, synchronous_commit = on and remote_apply commits return', async () => {
  await transfers('on', 8);
  await transfers('remote_apply', 8);
  const [reply] = await cluster.query<{ same: boolean }>(
    'SELECT replay_lsn = flush_lsn AS same FROM pg_stat_replication WHERE application_name = $1',
    [applicationName],
  );
  assert.equal(reply?.same, true, 'Warden reports as applied what it has flushed');
});

test('commits wait while Warden is down and return once it streams again', async () => {
  await stream.stop();
  const client = new pg.Client({ connectionString: cluster.url() });
  client.on('error', () => undefined);
  await client.connect();
  try {
    let returned = false;
    const pending = randomTransfer(client).then((done) => {
      returned = true;
      return done;
    });
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const [waiting] = await cluster.query<{ event: string }>(
      "SELECT wait_event AS event FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
    );
    assert.equal(returned, false, 'the commit waits for the synchronous standby');
    assert.equal(waiting?.event, 'SyncRep');
    stream = streamInto(cluster, { store: stream.store, slotName: stream.slotName });
    acknowledged.push((await withinOneMinute(pending, 'the waiting commit')).id);
  } finally {
    await client.end().catch(() => undefined);
  }
});

test('every acknowledged commit is in a restore, though the primary crashed right after it', async () => {
  await transfers('remote_apply', 3);
  await cluster.instance.stop({ mode: 'immediate' });
  await stream.stop();
  const ledger = await restoredLedger(cluster, stream.store, 'sync-latest', { kind: 'latest' });
  assert.deepEqual(ledger.transfers, acknowledged);
  assert.ok(ledger.balanced && ledger.consistent);
});
