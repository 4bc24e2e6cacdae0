import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDataLayerError } from '../../src/errors.ts';
import { createDatabase, type Database, type DatabaseOptions } from '../../src/db/index.ts';
import { startPrimaryWithReplica, type PrimaryWithReplica } from '../../../../test/harness/replica.ts';
import { capturingLogger, waitUntil } from './helpers.ts';

const IN_RECOVERY = 'SELECT pg_is_in_recovery() AS r';

/** Each test gets its own primary and replica. */
async function withPair(
  options: { applyDelayMs?: number; db?: Partial<DatabaseOptions> },
  body: (pair: PrimaryWithReplica, db: Database) => Promise<void>,
): Promise<void> {
  const pair = await startPrimaryWithReplica(
    options.applyDelayMs ? { applyDelayMs: options.applyDelayMs } : {},
  );
  const db = createDatabase({
    primary: pair.primary.url(),
    replicas: [pair.replica.url()],
    environment: 'dev',
    healthCheckIntervalMs: 100,
    maxReplicaLagMs: 1_000,
    ...options.db,
  });
  try {
    await db.start();
    await body(pair, db);
  } finally {
    await db.close();
    await pair.stop();
  }
}

async function readsFromReplica(db: Database, session?: string): Promise<boolean> {
  const { rows } = await db.query<{ r: boolean }>(IN_RECOVERY, [], {
    role: 'read',
    ...(session ? { session } : {}),
  });
  return rows[0]!.r;
}

test('reads go to a caught-up replica, writes and transactions to the primary', async () => {
  await withPair({}, async (_pair, db) => {
    assert.equal(await readsFromReplica(db), true);
    assert.equal((await db.query<{ r: boolean }>(IN_RECOVERY)).rows[0]!.r, false);
    assert.equal((await db.query<{ r: boolean }>(IN_RECOVERY, [], { role: 'batch' })).rows[0]!.r, false);
    const inTx = await db.transaction(async (tx) => (await tx.query<{ r: boolean }>(IN_RECOVERY)).rows[0]!.r);
    assert.equal(inTx, false);
    assert.equal(db.stats().routing.readsOnReplica, 1);
  });
});

test('a replica lagging beyond the bound is skipped until it catches up', async () => {
  await withPair({ db: { maxReplicaLagMs: 300 } }, async (pair, db) => {
    await db.query('CREATE TABLE t (id int)');
    await pair.replica.waitForReplay();
    await pair.replica.pauseReplay();
    await db.query('INSERT INTO t VALUES (1)');
    await waitUntil(async () => !(await readsFromReplica(db)), 10_000, 'reads leave the lagging replica');
    assert.ok(db.stats().routing.fallbackNoReplica >= 1);
    const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM t', [], { role: 'read' });
    assert.equal(rows[0]!.n, 1, 'the primary serves the fresh row');
    await pair.replica.resumeReplay();
    await waitUntil(() => readsFromReplica(db), 10_000, 'reads return to the replica');
  });
});

test('read-your-writes holds under a delayed replica and uses the replica once it replayed the write', async () => {
  await withPair({ applyDelayMs: 1_500, db: { maxReplicaLagMs: 60_000 } }, async (pair, db) => {
    await db.query('CREATE TABLE t (id int)');
    await pair.replica.waitForReplay();
    const session = 'user-42';
    await db.query('INSERT INTO t VALUES (1)', [], { session });
    const mine = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM t', [], {
      role: 'read',
      session,
    });
    assert.equal(mine.rows[0]!.n, 1, 'the session sees its own write');
    assert.ok(db.stats().routing.fallbackReadYourWrites >= 1);
    // Another session may read the delayed replica (lag bound is generous here).
    assert.equal(await readsFromReplica(db, 'someone-else'), true);
    await db.transaction(
      async (tx) => {
        await tx.query('INSERT INTO t VALUES (2)');
      },
      { session },
    );
    const afterTx = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM t', [], {
      role: 'read',
      session,
    });
    assert.equal(afterTx.rows[0]!.n, 2, 'the session sees its committed transaction');
    await pair.replica.waitForReplay();
    await waitUntil(() => readsFromReplica(db, session), 10_000, 'session reads move to the replica');
    const onReplica = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM t', [], {
      role: 'read',
      session,
    });
    assert.equal(onReplica.rows[0]!.n, 2);
  });
});

test('a failed replica is taken out of rotation and put back when it recovers', async () => {
  const { logger, warnings } = capturingLogger();
  await withPair({ db: { logger } }, async (pair, db) => {
    assert.equal(await readsFromReplica(db), true);
    await pair.replica.stop();
    // Reads keep working: the failed replica read is retried on the primary.
    assert.equal(await readsFromReplica(db), false);
    const replicaKey = `127.0.0.1:${pair.replica.port}`;
    await waitUntil(
      () => db.stats().hosts.find((h) => h.host === replicaKey)?.status === 'down',
      5_000,
      'marked down',
    );
    assert.ok(warnings().some((w) => w.host === replicaKey));
    assert.equal(await readsFromReplica(db), false);
    await pair.replica.restart();
    await waitUntil(() => readsFromReplica(db), 20_000, 'replica back in rotation');
  });
});

test('after the primary dies and the replica is promoted, writes find the new primary', async () => {
  // failoverWaitMs 0: the caller sees the failover (waiting it out is tested with Patroni).
  await withPair({ db: { failoverWaitMs: 0 } }, async (pair, db) => {
    await db.query('CREATE TABLE t (id int)');
    await db.query('INSERT INTO t VALUES (1)');
    await pair.replica.waitForReplay();
    await pair.primary.instance.stop({ mode: 'immediate' });
    const failures = new Set<string>();
    const during = await db.query('INSERT INTO t VALUES (2)').catch((e: unknown) => e);
    assert.ok(isDataLayerError(during), 'a typed error while no primary exists');
    assert.ok(during.retryable, `${during.code} is retryable`);
    failures.add(during.code);
    await pair.replica.promote();
    let done = false;
    const deadline = Date.now() + 30_000;
    while (!done && Date.now() < deadline) {
      try {
        await db.query('INSERT INTO t VALUES (2)');
        done = true;
      } catch (error) {
        assert.ok(
          isDataLayerError(error) && error.retryable,
          `retryable error expected, got ${String(error)}`,
        );
        failures.add(error.code);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    assert.ok(done, 'the write succeeded on the new primary');
    for (const code of failures) assert.ok(['WARDEN_E_FAILOVER', 'WARDEN_E_NO_PRIMARY'].includes(code), code);
    assert.equal(db.stats().primary, `127.0.0.1:${pair.replica.port}`);
    const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM t', [], { role: 'read' });
    assert.equal(rows[0]!.n, 2);
    assert.equal(db.stats().routing.failovers, 1);
  });
});
