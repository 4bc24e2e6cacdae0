import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import { isDataLayerError } from '../../src/errors.ts';
import { createDatabase, type DatabaseOptions } from '../../src/db/index.ts';
import { HIKARI_FAMILIES } from '../../src/db/pool-metrics.ts';
import { startCluster, type TestCluster } from '../../../../test/harness/postgres.ts';
import { freshDatabase, waitUntil } from '../db/helpers.ts';
import { promtoolCheck, scrape, valueOf } from './exposition.ts';

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster();
});
after(async () => {
  await cluster?.stop();
});

async function setup(registry: Registry, extra: Partial<DatabaseOptions> = {}) {
  const database = await freshDatabase(cluster);
  return createDatabase({
    primary: cluster.url({ database }),
    environment: 'dev',
    pools: {
      // Long enough for the second holder's connection to open on a loaded machine (it waits
      // while the pool creates it); the third caller then waits all of it.
      write: { minIdle: 1, maxSize: 2, connectionTimeoutMs: 3_000 },
      read: { minIdle: 0, maxSize: 1 },
      batch: { minIdle: 0, maxSize: 1 },
    },
    metrics: { registry },
    ...extra,
  });
}

test('pools export HikariCP metric names: exhaustion shows pending, then a timeout; usage and acquire times add up', async () => {
  const registry = new Registry();
  const db = await setup(registry);
  const write = { pool: 'write' };
  let releaseHolders!: () => void;
  const gate = new Promise<void>((resolve) => (releaseHolders = resolve));
  try {
    await db.start();
    let s = await scrape(registry);
    assert.equal(valueOf(s, 'hikaricp_connections_max', write), 2);
    assert.equal(valueOf(s, 'hikaricp_connections_min', write), 1);
    assert.equal(valueOf(s, 'hikaricp_connections', write), 1, 'pre-filled to min idle');
    assert.equal(valueOf(s, 'hikaricp_connections_idle', write), 1);
    assert.equal(valueOf(s, 'hikaricp_connections_creation_seconds_count', write), 1);
    assert.ok(valueOf(s, 'hikaricp_connections_creation_seconds_sum', write) > 0);
    assert.ok(valueOf(s, 'hikaricp_connections_creation_seconds_max', write) > 0);
    assert.equal(valueOf(s, 'hikaricp_connections_max', { pool: `read@${cluster.host}:${cluster.port}` }), 1);

    // A statement that holds its connection 200 ms: usage time at least that.
    await db.query('SELECT pg_sleep(0.2)');
    s = await scrape(registry);
    assert.equal(valueOf(s, 'hikaricp_connections_usage_seconds_count', write), 1);
    assert.ok(valueOf(s, 'hikaricp_connections_usage_seconds_sum', write) >= 0.2);
    assert.ok(valueOf(s, 'hikaricp_connections_usage_seconds_max', write) >= 0.2);

    // Exhaust the pool: two transactions hold both connections, a third caller waits.
    const holders = [1, 2].map(() => db.transaction(async (tx) => (await tx.query('SELECT 1'), await gate)));
    await waitUntil(() => db.stats().pools.write.active === 2, 5_000, 'two held');
    const waiting = db.query('SELECT 1').then(
      () => undefined,
      (e: unknown) => e,
    );
    s = await scrape(registry);
    assert.equal(valueOf(s, 'hikaricp_connections_active', write), 2);
    assert.equal(valueOf(s, 'hikaricp_connections_idle', write), 0);
    assert.equal(valueOf(s, 'hikaricp_connections_pending', write), 1, 'the waiting caller');
    assert.equal(valueOf(s, 'hikaricp_connections_timeout_total', write), 0);
    const error = await waiting;
    assert.ok(isDataLayerError(error, 'WARDEN_E_POOL_TIMEOUT'));

    s = await scrape(registry);
    assert.equal(valueOf(s, 'hikaricp_connections_timeout_total', write), 1);
    assert.equal(valueOf(s, 'hikaricp_connections_pending', write), 0);
    const stats = db.stats().pools.write;
    // Every checkout and the timed-out attempt, as HikariCP counts its acquire timer.
    assert.equal(valueOf(s, 'hikaricp_connections_acquire_seconds_count', write), stats.acquired + 1);
    assert.ok(valueOf(s, 'hikaricp_connections_acquire_seconds_sum', write) >= 3, 'the 3 s wait');
    assert.ok(valueOf(s, 'hikaricp_connections_acquire_seconds_max', write) >= 3);
    releaseHolders();
    await Promise.all(holders);

    const text = await registry.metrics();
    const check = await promtoolCheck(text);
    assert.equal(check.code, 0, `promtool check metrics: ${check.output}`);
    for (const family of HIKARI_FAMILIES)
      assert.match(text, new RegExp(`^# TYPE ${family.name} ${family.type}$`, 'm'));
  } finally {
    releaseHolders();
    await db.close();
  }
  assert.equal(registry.getMetricsAsArray().length, 0, 'close() takes the pools out of the registry');
});

test('two databases on one registry need their own metrics.name; a bad registry is refused', async () => {
  const registry = new Registry();
  const first = await setup(registry);
  try {
    assert.throws(
      () => createDatabase({ primary: cluster.url(), metrics: { registry } }),
      (e: unknown) => isDataLayerError(e, 'WARDEN_E_CONFIG_INVALID'),
    );
    const second = await setup(registry, { metrics: { registry, name: 'orders' } });
    await second.query('SELECT 1');
    const s = await scrape(registry);
    assert.equal(valueOf(s, 'hikaricp_connections_max', { pool: 'orders/write' }), 2);
    assert.equal(valueOf(s, 'hikaricp_connections_max', { pool: 'write' }), 2);
    await second.close();
    const after = await scrape(registry);
    assert.equal(after.has('hikaricp_connections_max{pool="orders/write"}'), false, 'closed: gone');
    assert.equal(valueOf(after, 'hikaricp_connections_max', { pool: 'write' }), 2, 'the other stays');
  } finally {
    await first.close();
  }
  for (const registryLike of [{}, { registerMetric: () => undefined }]) {
    assert.throws(
      () =>
        createDatabase({
          primary: cluster.url(),
          metrics: { registry: registryLike as never },
        }),
      (e: unknown) => isDataLayerError(e, 'WARDEN_E_CONFIG_INVALID'),
    );
  }
});
