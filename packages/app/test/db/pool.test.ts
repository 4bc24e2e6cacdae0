import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isDataLayerError } from '../../src/errors.ts';
import { createDatabase, type DatabaseOptions, type PoolSettings } from '../../src/db/index.ts';
import { startCluster, type TestCluster } from '../../../../test/harness/postgres.ts';
import { appName, capturingLogger, freshDatabase, sleep, waitUntil } from './helpers.ts';

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster();
});
after(async () => {
  await cluster?.stop();
});

/** A database of its own and small pools: only the write pool matters in these tests. */
async function setup(write: Partial<PoolSettings>, extra: Partial<DatabaseOptions> = {}) {
  const database = await freshDatabase(cluster);
  const application = appName();
  const db = createDatabase({
    primary: cluster.url({ database }),
    environment: 'dev',
    applicationName: application,
    pools: { write, read: { minIdle: 0, maxSize: 2 }, batch: { minIdle: 0, maxSize: 1 } },
    ...extra,
  });
  const sessions = async () =>
    (
      await cluster.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query NOT LIKE '%pg_is_in_recovery() AS in_recovery, %'",
        [application],
      )
    ).map((r) => r.pid);
  return { db, database, application, sessions };
}

async function backendPid(db: ReturnType<typeof createDatabase>): Promise<number> {
  const { rows } = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return rows[0]!.pid;
}

test('the pool pre-fills min idle at start and refills after a connection dies', async () => {
  const { db } = await setup({ minIdle: 3, maxSize: 5 });
  try {
    await db.start();
    assert.equal(db.stats().pools.write.idle, 3);
    const pid = await backendPid(db);
    await cluster.query('SELECT pg_terminate_backend($1)', [pid]);
    await waitUntil(
      () => db.stats().pools.write.destroyed >= 1 && db.stats().pools.write.idle === 3,
      10_000,
      'refill',
    );
    assert.equal(db.stats().pools.write.total, 3);
  } finally {
    await db.close();
  }
});

test('a caller waits at most the connection timeout and gets WARDEN_E_POOL_TIMEOUT naming the pool', async () => {
  // Both connections open before the clock matters: on a loaded machine opening one can take
  // longer than the 300 ms the third caller is allowed to wait, and the holders must not time out.
  const { db } = await setup({ minIdle: 2, maxSize: 2, connectionTimeoutMs: 300 });
  let releaseHolders!: () => void;
  const gate = new Promise<void>((resolve) => (releaseHolders = resolve));
  try {
    await db.start();
    await waitUntil(() => db.stats().pools.write.idle === 2, 10_000, 'two connections open');
    const holders = [1, 2].map(() => db.transaction(async (tx) => (await tx.query('SELECT 1'), await gate)));
    await waitUntil(() => db.stats().pools.write.active === 2, 5_000, 'two held');
    const error = await db.query('SELECT 1').then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isDataLayerError(error, 'WARDEN_E_POOL_TIMEOUT'));
    assert.equal(error.details.pool, 'write');
    assert.equal(error.retryable, true);
    assert.equal(db.stats().pools.write.timeouts, 1);
    assert.equal(db.stats().pools.write.total, 2);
    releaseHolders();
    await Promise.all(holders);
    await db.query('SELECT 1');
  } finally {
    releaseHolders();
    await db.close();
  }
});

test('idle connections above min idle are closed after the idle timeout', async () => {
  const { db, sessions } = await setup({ minIdle: 1, maxSize: 5, idleTimeoutMs: 300 });
  try {
    await Promise.all([1, 2, 3, 4].map(() => db.query('SELECT pg_sleep(0.2)')));
    // Four busy plus, as in HikariCP, one more to keep min idle idle.
    assert.ok(db.stats().pools.write.total >= 4);
    await waitUntil(() => db.stats().pools.write.total === 1, 10_000, 'shrink to min idle');
    await waitUntil(async () => (await sessions()).length <= 3, 5_000, 'sessions closed on the server');
  } finally {
    await db.close();
  }
});

test('connections are retired after their max lifetime and replaced', async () => {
  const { db } = await setup({ minIdle: 1, maxSize: 2, maxLifetimeMs: 400 });
  try {
    const first = await backendPid(db);
    await waitUntil(() => db.stats().pools.write.destroyed >= 1, 10_000, 'retirement');
    await waitUntil(() => db.stats().pools.write.idle === 1, 5_000, 'replacement');
    assert.notEqual(await backendPid(db), first);
  } finally {
    await db.close();
  }
});

test('a connection held past the leak threshold logs a warning with the acquiring stack', async () => {
  const { logger, warnings, lines } = capturingLogger();
  const { db } = await setup({ minIdle: 0, maxSize: 2, leakDetectionThresholdMs: 100 }, { logger });
  try {
    await db.transaction(async (tx) => {
      await tx.query('SELECT 1');
      await waitUntil(() => warnings().some((w) => typeof w.stack === 'string'), 5_000, 'leak warning');
    });
    const warning = warnings().find((w) => typeof w.stack === 'string')!;
    assert.equal(warning.pool, 'write');
    assert.match(String(warning.stack), /pool\.test\.ts/);
    assert.equal(db.stats().pools.write.leaksDetected, 1);
    assert.ok(
      lines.some((l) => l.level === 30 && l.pool === 'write'),
      'return of the leaked connection is logged',
    );
  } finally {
    await db.close();
  }
});

for (const [mode, expected] of [
  ['per-statement', 'firstCaller'],
  ['every-checkout', 'slowCaller'],
  ['off', undefined],
] as const) {
  test(`with leakDetectionStacks '${mode}' a statement held past the threshold is reported with its SQL and ${expected ? `the stack of ${expected}` : 'no stack'}`, async () => {
    const { logger, warnings } = capturingLogger();
    const { db } = await setup(
      { minIdle: 0, maxSize: 2, leakDetectionThresholdMs: 100, leakDetectionStacks: mode },
      { logger },
    );
    const sql = 'SELECT pg_sleep($1::float8)';
    async function firstCaller() {
      await db.query(sql, [0]);
    }
    async function slowCaller() {
      await db.query(sql, [0.6]);
    }
    try {
      await firstCaller();
      await slowCaller();
      const leaks = warnings().filter((w) => typeof w.heldMs === 'number');
      assert.equal(leaks.length, 1);
      assert.equal(leaks[0]!.statement, sql);
      assert.equal(db.stats().pools.write.leaksDetected, 1);
      if (expected === undefined) {
        assert.equal(leaks[0]!.stack, undefined);
      } else {
        assert.match(String(leaks[0]!.stack), new RegExp(expected));
        assert.doesNotMatch(
          String(leaks[0]!.stack),
          new RegExp(expected === 'firstCaller' ? 'slowCaller' : 'firstCaller'),
        );
      }
    } finally {
      await db.close();
    }
  });
}

test('a connection killed while idle is dropped and the next query runs on a new one', async () => {
  const { db } = await setup({ minIdle: 1, maxSize: 2, validateAfterIdleMs: 50 });
  try {
    const before = await backendPid(db);
    await cluster.query('SELECT pg_terminate_backend($1)', [before]);
    await waitUntil(() => db.stats().pools.write.destroyed >= 1, 5_000, 'the pool notices');
    const after = await backendPid(db);
    assert.notEqual(after, before);
    assert.ok(db.stats().pools.write.destroyed >= 1, 'the dead connection was closed');
  } finally {
    await db.close();
  }
});

test('validation after idleness drops a connection whose server stopped answering', async () => {
  const { db } = await setup({ minIdle: 1, maxSize: 2, validateAfterIdleMs: 50, validationTimeoutMs: 200 });
  let frozen: number | undefined;
  try {
    frozen = await backendPid(db);
    await sleep(100);
    // A stopped backend answers nothing, like a peer behind a dead network path.
    process.kill(frozen, 'SIGSTOP');
    const after = await backendPid(db);
    assert.notEqual(after, frozen);
    assert.equal(db.stats().pools.write.validationFailures, 1);
  } finally {
    if (frozen !== undefined) process.kill(frozen, 'SIGCONT');
    await db.close();
  }
});

test('a connection used again within the validation window is not validated', async () => {
  const { db } = await setup({ minIdle: 1, maxSize: 1, validateAfterIdleMs: 60_000 });
  try {
    const first = await backendPid(db);
    assert.equal(await backendPid(db), first);
    assert.equal(db.stats().pools.write.validationFailures, 0);
  } finally {
    await db.close();
  }
});

test('the connection budget warns with the numbers when pools exceed max_connections', async () => {
  const { logger, warnings } = capturingLogger();
  const database = await freshDatabase(cluster);
  const db = createDatabase({
    primary: cluster.url({ database }),
    environment: 'prod',
    appInstances: 3,
    logger,
  });
  try {
    await db.start();
    const budget = db.budget();
    assert.ok(budget);
    assert.equal(budget.ok, false);
    const primary = budget.servers[0]!;
    // (read 10 + write 15 + batch 5 + 1 health check) x 3 instances against 60 - 3 reserved
    assert.equal(primary.demand, 93);
    assert.equal(primary.maxConnections, 60);
    assert.equal(primary.available, 57);
    const warning = warnings().find((w) => w.demand === 93);
    assert.ok(warning, 'budget warning logged');
    assert.equal(warning.available, 57);
  } finally {
    await db.close();
  }
});

test('a statement error keeps its SQLSTATE and leaves the connection usable', async () => {
  const { db } = await setup({ minIdle: 1, maxSize: 1 });
  try {
    const error = await db.query('SELECT 1/0').catch((e: unknown) => e);
    assert.ok(isDataLayerError(error, 'WARDEN_E_SERVER_ERROR'));
    assert.equal(error.details.sqlstate, '22012');
    const rolledBack = await db
      .transaction(async (tx) => {
        await tx.query('CREATE TABLE t (id int)');
        await tx.query('SELECT 1/0');
      })
      .catch((e: unknown) => e);
    assert.ok(isDataLayerError(rolledBack, 'WARDEN_E_SERVER_ERROR'));
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_class WHERE relname = 't'",
    );
    assert.equal(rows[0]?.n, 0);
    assert.equal(db.stats().pools.write.created, 1);
  } finally {
    await db.close();
  }
});

test('sessions killed by the server and a server restart never crash the process', async () => {
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => uncaught.push(error);
  process.on('uncaughtException', onUncaught);
  const { db, database } = await setup({ minIdle: 3, maxSize: 4 });
  try {
    await db.start();
    await cluster.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [
      database,
    ]);
    await sleep(200);
    await db.query('SELECT 1');
    await cluster.instance.stop({ mode: 'immediate' });
    const error = await db.query('SELECT 1').catch((e: unknown) => e);
    assert.ok(isDataLayerError(error), 'a typed error while the server is down');
    assert.ok(error.retryable, `${error.code} is retryable`);
    await cluster.instance.start();
    await waitUntil(
      async () =>
        await db.query('SELECT 1').then(
          () => true,
          () => false,
        ),
      20_000,
      'queries work again',
    );
    assert.deepEqual(uncaught, []);
  } finally {
    process.off('uncaughtException', onUncaught);
    await db.close();
  }
});
