import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { takeDump } from '../../src/backup/logical-dump.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { WardenError } from '../../src/errors.ts';
import { WardenEvents, type WardenEvent } from '../../src/events/warden-events.ts';
import type { ConnectionConfig } from '../../src/postgres/connection-config.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { restore } from '../../src/restore/restore.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import { Schedule } from '../../src/scheduler/schedule.ts';
import type { JobLock } from '../../src/scheduler/job-lock.ts';
import { freePort } from '../../src/util/free-port.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { waitFor } from '../harness/spawned-warden.ts';

/**
 * The failure side of the use cases' events (the daemon test shows the successes through
 * /metrics): a server that refuses connections, a job that fails. Payloads carry the subject
 * given, a stable code, and never the password.
 */

const PASSWORD = 'use-case-events-secret-4711';
const SUBJECT = { cluster: 'ledger', repository: 's3://bucket/ledger' };

async function setup() {
  const events = new WardenEvents((error) => {
    throw error;
  });
  const seen: WardenEvent[] = [];
  events.onAny((event) => seen.push(event));
  const store = new FsObjectStore(path.join(await tempDir('use-case-events'), 'repo'));
  const connection: ConnectionConfig = {
    host: '127.0.0.1',
    port: await freePort(),
    user: 'postgres',
    database: 'postgres',
    password: PASSWORD,
    tls: 'disable',
  } as ConnectionConfig;
  return { events, seen, store, connection };
}

function assertNoSecret(seen: WardenEvent[]): void {
  assert.ok(!JSON.stringify(seen).includes(PASSWORD), 'the password in an event');
}

test('a backup and a dump that fail publish started and failed with the code and the duration', async () => {
  const { events, seen, store, connection } = await setup();
  const observed = { events, eventSubject: SUBJECT };
  await assert.rejects(
    takeBackup({ connection, store, compression: 'zstd', incremental: 'prefer', ...observed }),
  );
  await assert.rejects(takeDump({ connection, database: 'postgres', store, ...observed }));
  assert.deepEqual(
    seen.map((e) => [e.name, 'kind' in e.payload ? e.payload.kind : undefined]),
    [
      ['backup.started', 'incremental'],
      ['backup.failed', 'incremental'],
      ['backup.started', 'dump'],
      ['backup.failed', 'dump'],
    ],
  );
  for (const event of seen) {
    assert.equal(event.payload.cluster, 'ledger');
    assert.equal(event.payload.repository, 's3://bucket/ledger');
    if (event.name === 'backup.failed') {
      assert.match(event.payload.error.code, /^WARDEN_E_[A-Z_]+$/);
      assert.ok(event.payload.durationMs >= 0);
    }
  }
  assertNoSecret(seen);
});

test('a use case without events publishes nothing; the default subject is "default" and the store', async () => {
  const { events, seen, store, connection } = await setup();
  await assert.rejects(takeBackup({ connection, store, compression: 'zstd' }));
  assert.equal(seen.length, 0);
  await assert.rejects(takeBackup({ connection, store, compression: 'zstd', events }));
  assert.deepEqual(seen[0]!.payload, {
    cluster: 'default',
    repository: store.location,
    kind: 'full',
    at: seen[0]!.payload.at,
  });
});

test('the WAL receiver publishes its lock, its start and its failure (not a stop after it)', async () => {
  const { events, seen, store, connection } = await setup();
  const receiver = new WalReceiver({ connection, store, maxAttempts: 1, events, eventSubject: SUBJECT });
  await assert.rejects(receiver.run());
  assert.deepEqual(
    seen.map((e) => [
      e.name,
      'state' in e.payload ? e.payload.state : 'lock' in e.payload ? e.payload.lock : '',
    ]),
    [
      ['lock.acquired', 'wal-stream'],
      ['wal.stream', 'starting'],
      ['wal.stream', 'failed'],
    ],
  );
  const failed = seen[2]!.payload as { error?: { code: string } };
  assert.match(failed.error?.code ?? '', /^WARDEN_E_/);
  assertNoSecret(seen);
});

test('the scheduler publishes job.finished for a failed and a succeeded run, with durations', async () => {
  const { events, seen, store } = await setup();
  const lock: JobLock = { tryAcquire: async () => async () => {}, close: async () => {} };
  const yearly = new Schedule('0 0 1 1 *', 'UTC', 'test');
  const scheduler = new Scheduler({
    jobs: [
      {
        name: 'drill',
        schedule: yearly,
        run: async () => {
          await new Promise((resolve) => setTimeout(resolve, 30));
          throw new WardenError('WARDEN_E_DRILL_FAILED', 'RTO missed');
        },
      },
      {
        name: 'verification',
        schedule: yearly,
        run: async () => ({ status: 'succeeded', detail: 'verified' }),
      },
    ],
    store,
    lock,
    tickMs: 50,
    events,
    eventSubject: SUBJECT,
  });
  scheduler.start();
  try {
    await waitFor('both jobs', 30_000, () => seen.filter((e) => e.name === 'job.finished').length >= 2);
  } finally {
    await scheduler.stop();
  }
  const finished = seen.flatMap((e) => (e.name === 'job.finished' ? [e.payload] : []));
  assert.deepEqual(
    finished.map((f) => [f.job, f.outcome, f.error?.code]),
    [
      ['drill', 'failed', 'WARDEN_E_DRILL_FAILED'],
      ['verification', 'succeeded', undefined],
    ],
  );
  assert.ok(finished[0]!.durationMs >= 25, `duration ${finished[0]!.durationMs}`);
  assert.equal(finished[1]!.detail, 'verified');
  assert.equal(finished[0]!.cluster, 'ledger');
});

test('a restore that fails publishes restore.failed with its code and duration', async () => {
  const { events, seen, store } = await setup();
  const targetDir = path.join(await tempDir('use-case-events-restore'), 'data');
  await assert.rejects(
    restore({ store, target: { kind: 'latest' }, targetDir, events, eventSubject: SUBJECT }),
  );
  assert.deepEqual(
    seen.map((e) => e.name),
    ['restore.failed'],
  );
  const failed = seen[0]!.payload as { error: { code: string }; durationMs: number; cluster: string };
  assert.match(failed.error.code, /^WARDEN_E_[A-Z_]+$/);
  assert.ok(failed.durationMs >= 0);
  assert.equal(failed.cluster, 'ledger');
});
