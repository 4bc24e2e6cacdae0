import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import type { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { rejectsWithCode } from '../faults/helpers.ts';
import { withClient } from '../harness/postgres.ts';
import { startPrimaryWithReplica, type PrimaryWithReplica } from '../harness/replica.ts';
import { restoredLedger } from '../harness/restored.ts';
import { streamInto, type StreamingRepository } from '../harness/streaming.ts';

// `warden backup --from <standby>`: BASE_BACKUP on a streaming replica, WAL from the primary's
// stream; the backup restores like one taken on the primary.
let pair: PrimaryWithReplica;
let stream: StreamingRepository<FsObjectStore>;
const before1: number[] = [];

before(async () => {
  pair = await startPrimaryWithReplica();
  await withClient(pair.primary.url(), async (client) => {
    await createLedger(client);
    for (let i = 0; i < 5; i += 1) before1.push((await randomTransfer(client)).id);
  });
  stream = streamInto(pair.primary);
  await stream.waitForArchive();
  await pair.replica.waitForReplay();
});

after(async () => {
  await stream?.stop();
  await pair?.stop();
});

const standby = () => ({ ...connectionFromUrl(pair.replica.url()), tls: 'disable' as const });

test('a backup taken from a streaming standby restores every commit, before and after it', async () => {
  const report = await takeBackup({
    connection: stream.connection,
    source: standby(),
    store: stream.store,
    slotName: stream.slotName,
    compression: 'zstd',
  });
  assert.ok(report.steps.some((step) => step.name === 'check standby' && step.status === 'succeeded'));
  const [primaryTli] = await pair.primary.query<{ tli: number }>(
    'SELECT timeline_id AS tli FROM pg_control_checkpoint()',
  );
  assert.equal(report.backup.timeline, primaryTli!.tli);
  const afterIds = await withClient(pair.primary.url(), async (client) => [
    (await randomTransfer(client)).id,
    (await randomTransfer(client)).id,
  ]);
  await stream.waitForArchive();
  const ledger = await restoredLedger(pair.primary, stream.store, 'from-standby', {
    kind: 'backup',
    id: report.backup.id,
  });
  assert.deepEqual(ledger.transfers, before1, 'the backup holds what the standby had replayed');
  const latest = await restoredLedger(pair.primary, stream.store, 'from-standby-latest', { kind: 'latest' });
  assert.deepEqual(latest.transfers, [...before1, ...afterIds]);
  assert.ok(latest.balanced && latest.consistent);
});

test('a server that is not a streaming standby is refused before any backup starts', async () => {
  await rejectsWithCode(
    takeBackup({
      connection: stream.connection,
      source: stream.connection, // the primary itself
      store: stream.store,
      slotName: stream.slotName,
      compression: 'zstd',
    }),
    'WARDEN_E_STANDBY_NOT_STREAMING',
  );
  // A standby whose WAL receiver stopped (its primary_conninfo emptied) replays nothing new.
  await pair.replica.query("ALTER SYSTEM SET primary_conninfo = ''");
  await pair.replica.query('SELECT pg_reload_conf()');
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const rows = await pair.replica.query('SELECT 1 FROM pg_stat_wal_receiver');
    if (rows.length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await rejectsWithCode(
    takeBackup({
      connection: stream.connection,
      source: standby(),
      store: stream.store,
      slotName: stream.slotName,
      compression: 'zstd',
    }),
    'WARDEN_E_STANDBY_NOT_STREAMING',
  );
});
