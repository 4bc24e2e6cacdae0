import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cache } from '../../packages/app/src/cache/index.ts';
import { createDatabase, type Database } from '../../packages/app/src/db/index.ts';
import { isDataLayerError } from '../../packages/app/src/errors.ts';
import { createRedis } from '../../packages/app/src/redis/ioredis-adapter.ts';
import type { RedisLike } from '../../packages/app/src/redis/redis-like.ts';
import { Daemon } from '../../src/daemon/daemon.ts';
import { resolveDaemonPlan } from '../../src/daemon/daemon-config.ts';
import type { WardenEventMap } from '../../src/events/warden-events.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';
import { freePort } from '../../src/util/free-port.ts';
import { startPatroniCluster, type PatroniCluster } from '../harness/patroni-cluster.ts';
import { startRedis, type TestRedis } from '../harness/redis.ts';
import { tempDir } from '../harness/temp-dir.ts';

// One real 3-node Patroni cluster (two members at first, the third joins later) for the data
// layer's router following Patroni and for the cache invalidation after a failover:
// - the router is built from Patroni alone (`patroni:`, no host list); a member that joins gets a
//   pool from a refresh, a switchover to it is followed by writes under a running workload, and
//   every acknowledged write is on the new leader (strict: a switchover loses nothing);
// - the leader is SIGKILLed: the daemon (following the leader through patroni.urls) sees the new
//   timeline and invalidates, two cache instances reload from the new leader through the same
//   router, writes resume without a new Database, the dead member's pool is drained.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(
  what: string,
  timeoutMs: number,
  check: () => boolean | Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what} (waited ${timeoutMs} ms)`);
    await sleep(100);
  }
}

interface WriteFailure {
  id: number;
  code: string;
  /** True when the error proves the INSERT never ran (the router's own classification is checked). */
  notRun: boolean;
}

/**
 * Writers inserting unique ids and a reader, through the router, until stopped. Each write is
 * either acknowledged or failed with its error; nothing is retried here (the router decides).
 */
function startWorkload(db: Database, firstId: number) {
  const acked: Array<{ id: number; at: number }> = [];
  const failed: WriteFailure[] = [];
  const reads = { ok: 0, failed: [] as string[] };
  let next = firstId;
  let running = true;
  const writer = async () => {
    while (running) {
      const id = next++;
      try {
        await db.query('INSERT INTO router_writes (id) VALUES ($1)', [id]);
        acked.push({ id, at: Date.now() });
      } catch (error) {
        const code = isDataLayerError(error) ? error.code : String(error);
        const notRun =
          isDataLayerError(error) &&
          (error.code === 'WARDEN_E_NO_PRIMARY' ||
            error.code === 'WARDEN_E_DB_UNREACHABLE' ||
            error.code === 'WARDEN_E_POOL_TIMEOUT' ||
            error.details.statementOutcome === 'not-run');
        failed.push({ id, code, notRun });
      }
      await sleep(10);
    }
  };
  const reader = async () => {
    while (running) {
      try {
        await db.query('SELECT count(*) FROM router_writes', [], { role: 'read' });
        reads.ok += 1;
      } catch (error) {
        reads.failed.push(isDataLayerError(error) ? error.code : String(error));
      }
      await sleep(10);
    }
  };
  const done = Promise.all([writer(), writer(), reader()]);
  return {
    acked,
    failed,
    reads,
    async stop() {
      running = false;
      await done;
    },
  };
}

async function idsOnLeader(cluster: PatroniCluster): Promise<Set<number>> {
  const rows = await cluster.query<{ id: number }>('leader', 'SELECT id FROM router_writes');
  return new Set(rows.map((r) => r.id));
}

/** Waits until every running replica has replayed the leader's current WAL position. */
async function waitForReplay(cluster: PatroniCluster): Promise<void> {
  const [{ lsn }] = (await cluster.query<{ lsn: string }>(
    'leader',
    'SELECT pg_current_wal_lsn()::text AS lsn',
  )) as [{ lsn: string }];
  const leader = (await cluster.leader()).name;
  for (const member of cluster.members) {
    if (member.name === leader || !member.patroniPid()) continue;
    await waitFor(`${member.name} replays ${lsn}`, 60_000, async () => {
      const rows = await cluster
        .query<{ done: boolean }>(member.name, 'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done', [lsn])
        .catch(() => [{ done: false }]);
      return rows[0]?.done === true;
    });
  }
}

/** No connection borrowed or awaited once the workload stopped (a leak would stay active). */
function assertNoPoolLeak(db: Database): void {
  const { pools } = db.stats();
  for (const pool of [pools.write, pools.batch, ...Object.values(pools.read)]) {
    assert.equal(pool.active, 0, `${pool.name}: no connection still borrowed`);
    assert.equal(pool.waiting, 0, `${pool.name}: nobody waiting`);
  }
}

describe('the router and the caches follow a Patroni cluster', { timeout: 400_000 }, () => {
  let cluster: PatroniCluster;
  let redisServer: TestRedis;
  let daemon: Daemon | undefined;
  let db: Database | undefined;
  const clients: RedisLike[] = [];
  const caches: Cache[] = [];
  const memberKey = (name: string) => `127.0.0.1:${cluster.member(name).pgPort}`;
  const readPoolKeys = () => Object.keys(db!.stats().pools.read).sort();

  before(async () => {
    [cluster, redisServer] = await Promise.all([startPatroniCluster({ startMembers: 2 }), startRedis()]);
    const superuser = new URL((await cluster.leader()).url());
    db = createDatabase({
      patroni: {
        // A dead endpoint first: every read fails over to the next one.
        urls: [`http://127.0.0.1:${await freePort()}`, ...cluster.restUrls()],
        connection: {
          user: decodeURIComponent(superuser.username),
          password: decodeURIComponent(superuser.password),
          database: 'postgres',
        },
        refreshIntervalMs: 500,
      },
      environment: 'dev',
      // Longer than Patroni's ttl (10 s): a SIGKILLed leader is replaced within it.
      failoverWaitMs: 30_000,
    });
    await db.query('CREATE TABLE router_writes (id int PRIMARY KEY)');
  });
  after(async () => {
    await daemon?.stop();
    await Promise.all(caches.map((c) => c.stop()));
    await Promise.all(clients.map((c) => c.quit()));
    await db?.close();
    await Promise.all([cluster?.stop(), redisServer?.stop()]);
  });

  test('a member that joins gets a pool; a switchover to it is followed and no acknowledged write is lost', async () => {
    const twoMembers = [memberKey('node1'), memberKey('node2')].sort().join();
    await waitFor(
      'the router routes to both running members',
      60_000,
      () => readPoolKeys().join() === twoMembers,
    );
    await cluster.startMember('node3');
    await cluster.waitForReplicas(2);
    await waitFor('the router adopts the member that joined', 60_000, () =>
      readPoolKeys().includes(memberKey('node3')),
    );
    const workload = startWorkload(db!, 1);
    await waitFor('writes before the switchover', 30_000, () => workload.acked.length >= 20);
    const { to } = await cluster.switchover('node3');
    assert.equal(to, 'node3');
    const switchedAt = Date.now();
    await waitFor('writes after the switchover', 60_000, () =>
      workload.acked.some((w) => w.at > switchedAt + 500),
    );
    const readsBefore = workload.reads.ok;
    await waitFor('reads after the switchover', 30_000, () => workload.reads.ok > readsBefore + 5);
    await workload.stop();
    // The same Database object writes to the new leader.
    assert.equal(db!.stats().primary, memberKey('node3'));
    const onLeader = await idsOnLeader(cluster);
    const lost = workload.acked.filter((w) => !onLeader.has(w.id));
    assert.deepEqual(lost, [], 'every acknowledged write is on the new leader');
    const wronglyFailed = workload.failed.filter((f) => f.notRun && onLeader.has(f.id));
    assert.deepEqual(wronglyFailed, [], 'no write reported as not run was committed');
    // The short failover is waited out inside the router: no caller saw a "not run" failure.
    assert.deepEqual(
      workload.failed.filter((f) => f.notRun),
      [],
      'writes that never ran were retried',
    );
    assertNoPoolLeak(db!);
    const { topology, routing } = db!.stats();
    assert.ok(topology && topology.endpointFailures > 0, 'the dead endpoint was reported');
    assert.ok(topology.changes >= 2, 'a join and a leader change were applied');
    console.log(
      `# switchover: ${workload.acked.length} writes acknowledged, ${workload.failed.length} failed with an unknown outcome, ` +
        `${routing.writeRetries} retries inside the router, ${workload.reads.ok} reads (${workload.reads.failed.length} failed)`,
    );
  });

  test('a SIGKILLed leader: writes resume through the same router, the daemon invalidates and both instances reload', async () => {
    const dir = await tempDir('cache-patroni');
    await db!.query('CREATE TABLE clients (id int PRIMARY KEY, name text)');
    await db!.query("INSERT INTO clients VALUES (1, 'Ada')");
    const plan = resolveDaemonPlan({
      section: {
        profile: 'dev',
        walStreaming: false,
        heartbeat: false,
        http: { port: 0 },
        schedules: {
          'full-backup': null,
          backup: null,
          'logical-dump': null,
          retention: null,
          verification: null,
          drill: null,
        },
        cache: {
          redis: { url: `redis://${redisServer.host}:${redisServer.port}/0` },
          prefixes: ['app:cache:'],
          sessionPrefix: 'app:sess:',
          timelinePoll: '500ms',
        },
      },
      baseDir: dir,
      defaultCluster: {
        connection: { ...connectionFromUrl(cluster.multiHostUrl()), patroni: { urls: cluster.restUrls() } },
        repository: { path: path.join(dir, 'repo') },
      },
      retention: DEFAULT_RETENTION_POLICY,
      flags: {},
      env: {},
    });
    daemon = new Daemon({ plan, compression: 'none' });
    const invalidated: Array<WardenEventMap['cache.invalidated']> = [];
    daemon.events.on('cache.invalidated', (e) => invalidated.push(e));
    await daemon.start();
    const connect = async () => {
      const client = createRedis({
        host: redisServer.host,
        port: redisServer.port,
        commandTimeoutMs: 2000,
      });
      clients.push(client);
      await client.connect();
      return client;
    };
    const admin = await connect();
    for (let i = 0; (await admin.get('app:cache:__generation:timeline')) === null; i++) {
      assert.ok(i < 600, 'the daemon recorded the timeline');
      await sleep(100);
    }
    const before = Number(await admin.get('app:cache:__generation:timeline'));
    const a = new Cache({ redis: await connect(), prefix: 'app:cache:', l1: { maxEntries: 10 } });
    const b = new Cache({ redis: await connect(), prefix: 'app:cache:', l1: { maxEntries: 10 } });
    caches.push(a, b);
    await Promise.all([a.start(), b.start()]);
    const readName = (cache: Cache) =>
      cache.getOrSet('client:1', async () => {
        const { rows } = await db!.query<{ name: string }>('SELECT name FROM clients WHERE id = 1');
        return rows[0]!.name;
      });
    assert.equal(await readName(a), 'Ada');
    assert.equal(await readName(b), 'Ada');
    const workload = startWorkload(db!, 1_000_000);
    await waitFor('writes before the kill', 30_000, () => workload.acked.length >= 20);
    // Replication is asynchronous: the table and the first writes must be on every replica before
    // the kill, or Patroni may promote one that never had them (its maximum_lag_on_failover).
    await cluster.waitForReplicas(2);
    await waitForReplay(cluster);
    const { killed, to } = await cluster.killLeader();
    const killedAt = Date.now();
    assert.notEqual(killed, to);
    await waitFor('invalidation after the failover', 120_000, () => invalidated.length > 0);
    const event = invalidated[0]!;
    assert.equal(event.kind, 'timeline');
    assert.equal(event.reason, `timeline ${before} -> ${before + 1}`);
    assert.equal(await admin.get('app:cache:k:client:1'), null);
    console.log(`# Patroni failover: caches invalidated ${Date.now() - killedAt} ms after the SIGKILL`);
    await waitFor('writes after the failover', 60_000, () =>
      workload.acked.some((w) => w.at > killedAt + 500),
    );
    await workload.stop();
    // No retry loop in the caller: the router waits the failover out and writes to the new leader.
    await db!.query("UPDATE clients SET name = 'Grace' WHERE id = 1");
    assert.equal(db!.stats().primary, memberKey(to));
    const onLeader = await idsOnLeader(cluster);
    assert.deepEqual(
      workload.failed.filter((f) => f.notRun && onLeader.has(f.id)),
      [],
      'no write reported as not run was committed',
    );
    assert.deepEqual(
      workload.failed.filter((f) => f.notRun),
      [],
      'writes that never ran were retried',
    );
    // Asynchronous replication: writes acknowledged by the killed leader may be lost, those
    // acknowledged after the new leader took over may not.
    const ackedAfter = workload.acked.filter((w) => w.at > killedAt);
    assert.ok(ackedAfter.length > 0);
    assert.deepEqual(
      ackedAfter.filter((w) => !onLeader.has(w.id)),
      [],
      'every write acknowledged after the failover is on the new leader',
    );
    const lostAsync = workload.acked.filter((w) => w.at <= killedAt && !onLeader.has(w.id)).length;
    await a.delete('client:1');
    assert.equal(await readName(a), 'Grace');
    for (let i = 0; (await readName(b)) !== 'Grace'; i++) {
      assert.ok(i < 200, 'B reloads');
      await sleep(50);
    }
    // Patroni forgets the dead member once its key expires (ttl): the router drains its pool.
    await waitFor('the dead member is dropped', 60_000, () => !readPoolKeys().includes(memberKey(killed)));
    assertNoPoolLeak(db!);
    console.log(
      `# failover: ${workload.acked.length} writes acknowledged (${lostAsync} lost with the killed leader), ` +
        `${workload.failed.length} failed with an unknown outcome, ${workload.reads.ok} reads (${workload.reads.failed.length} failed)`,
    );
  });
});
