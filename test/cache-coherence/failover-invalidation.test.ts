import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { stringify } from 'yaml';
import { Cache } from '../../packages/app/src/cache/index.ts';
import { createRedis } from '../../packages/app/src/redis/ioredis-adapter.ts';
import type { MessageHandler, RedisLike } from '../../packages/app/src/redis/redis-like.ts';
import { SessionStore } from '../../packages/app/src/sessions/session-store.ts';
import { generateSessionId } from '../../packages/app/src/sessions/session-id.ts';
import { Daemon } from '../../src/daemon/daemon.ts';
import { resolveDaemonPlan, type DaemonSection } from '../../src/daemon/daemon-config.ts';
import type { WardenEventMap } from '../../src/events/warden-events.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';
import { runWarden } from '../harness/cli.ts';
import { startRedis, type TestRedis } from '../harness/redis.ts';
import { startPrimaryWithReplica, type PrimaryWithReplica } from '../harness/replica.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { tempDir } from '../harness/temp-dir.ts';

// "Cache invalidation after failover observed by two cache instances" (issue 15): a real
// asynchronous failover (a streaming standby that missed the last write, promoted with
// pg_promote()) behind one service address (a TCP proxy moved to the new primary, as a VIP or a
// Kubernetes Service moves), the real daemon watching that address, two @warden/app Cache
// instances with their own L1 and Redis connections; one of them has its subscription cut.

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const OPERATOR_TOKEN = randomBytes(24).toString('hex');
const VIEWER_TOKEN = randomBytes(24).toString('hex');
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

async function eventually<T>(
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  what: string,
  timeoutMs = 60_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read().catch(() => undefined as T);
    if (ok(value)) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not reached (last ${JSON.stringify(value)})`);
    await sleep(50);
  }
}

/** Fault injection: the real client, whose subscription drops every message once cut. */
function cuttable(redis: RedisLike): { redis: RedisLike; cut(): void } {
  let cut = false;
  const wrapped: RedisLike = {
    isCluster: redis.isCluster,
    commandTimeoutMs: redis.commandTimeoutMs,
    connect: () => redis.connect(),
    quit: () => redis.quit(),
    get: (key) => redis.get(key),
    set: (key, value, options) => redis.set(key, value, options),
    unlink: (keys) => redis.unlink(keys),
    eval: (script, keys, args) => redis.eval(script, keys, args),
    scan: (pattern, onKeys, count) => redis.scan(pattern, onKeys, count),
    publish: (channel, message) => redis.publish(channel, message),
    subscribe: (channel: string, handler: MessageHandler) =>
      redis.subscribe(channel, (message) => {
        if (!cut) handler(message);
      }),
  };
  return { redis: wrapped, cut: () => (cut = true) };
}

describe('cache invalidation after a failover', { timeout: 300_000 }, () => {
  let pair: PrimaryWithReplica;
  let proxy: TcpProxy;
  let redisServer: TestRedis;
  let daemon: Daemon;
  const clients: RedisLike[] = [];
  const caches: Cache[] = [];
  let appDb: () => Promise<pg.Client>;
  let serviceUrl: string;
  let dir: string;
  let section: DaemonSection;

  const newClient = async () => {
    const client = createRedis({ host: redisServer.host, port: redisServer.port, commandTimeoutMs: 2000 });
    clients.push(client);
    await client.connect();
    return client;
  };
  const readName = async (cache: Cache) =>
    cache.getOrSet('client:1', async () => {
      const db = await appDb();
      try {
        return (await db.query<{ name: string }>('SELECT name FROM clients WHERE id = 1')).rows[0]!.name;
      } finally {
        await db.end();
      }
    });

  before(async () => {
    dir = await tempDir('cache-coherence');
    [pair, redisServer] = await Promise.all([startPrimaryWithReplica(), startRedis()]);
    proxy = await startTcpProxy({
      host: '127.0.0.1',
      upstream: { host: pair.primary.host, port: pair.primary.port },
      mode: 'transparent',
    });
    serviceUrl = `postgres://postgres:${encodeURIComponent(pair.primary.password)}@127.0.0.1:${proxy.port}/postgres`;
    appDb = async () => {
      const client = new pg.Client({ connectionString: serviceUrl });
      client.on('error', () => undefined);
      await client.connect();
      return client;
    };
    await pair.primary.query('CREATE TABLE clients (id int PRIMARY KEY, name text)');
    await pair.primary.query("INSERT INTO clients VALUES (1, 'Ada')");
    await pair.replica.waitForReplay();
    section = {
      profile: 'dev',
      walStreaming: false,
      heartbeat: false,
      schedules: {
        'full-backup': null,
        backup: null,
        'logical-dump': null,
        retention: null,
        verification: null,
        drill: null,
      },
      http: {
        port: 0,
        tokens: [
          { name: 'ops', role: 'operator', tokenSha256: sha256(OPERATOR_TOKEN) },
          { name: 'watcher', role: 'viewer', tokenSha256: sha256(VIEWER_TOKEN) },
        ],
      },
      cache: {
        redis: { url: `redis://${redisServer.host}:${redisServer.port}/0` },
        prefixes: ['app:cache:', 'app:query:'],
        sessionPrefix: 'app:sess:',
        timelinePoll: '300ms',
        batchSize: 7, // several SCAN pages and UNLINK batches with the keys below
      },
    };
  });

  after(async () => {
    await daemon?.stop();
    await Promise.all(caches.map((c) => c.stop()));
    await Promise.all(clients.map((c) => c.quit()));
    await proxy?.close();
    await Promise.all([pair?.stop(), redisServer?.stop()]);
  });

  const startDaemon = async (overrides: Partial<DaemonSection['cache']> = {}) => {
    const plan = resolveDaemonPlan({
      section: { ...section, cache: { ...section.cache!, ...overrides } },
      baseDir: dir,
      defaultCluster: {
        connection: connectionFromUrl(serviceUrl),
        repository: { path: path.join(dir, 'repo') },
      },
      retention: DEFAULT_RETENTION_POLICY,
      flags: {},
      env: {},
    });
    const started = new Daemon({ plan, compression: 'none' });
    await started.start();
    return started;
  };

  test('a promotion makes the daemon clear the prefixes and every instance drop its L1, sessions untouched', async () => {
    const admin = await newClient();
    daemon = await startDaemon();
    const invalidated: Array<WardenEventMap['cache.invalidated']> = [];
    daemon.events.on('cache.invalidated', (e) => invalidated.push(e));
    // The daemon has read timeline 1 through the service address and recorded it.
    await eventually(
      () => admin.get('app:cache:__generation:timeline'),
      (v) => v === '1',
      'timeline recorded',
    );

    const a = new Cache({ redis: await newClient(), prefix: 'app:cache:', l1: { maxEntries: 100 } });
    const cutB = cuttable(await newClient());
    const b = new Cache({ redis: cutB.redis, prefix: 'app:cache:', l1: { maxEntries: 100 } });
    caches.push(a, b);
    await Promise.all([a.start(), b.start()]);
    const sessions = new SessionStore({ redis: admin });
    const sessionId = generateSessionId();
    await sessions.save(sessionId, { user: 'ada' }, {}, 'upsert');
    // More entries than one batch, under both prefixes, so the clear pages through them.
    for (let i = 0; i < 20; i++) await admin.set(`app:query:q${i}`, 'x');

    // The standby stops receiving; the primary takes a write the standby will never have.
    await pair.replica.query("ALTER SYSTEM SET primary_conninfo = ''");
    await pair.replica.query('SELECT pg_reload_conf()');
    await eventually(
      () => pair.replica.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_wal_receiver'),
      (rows) => rows?.[0]?.n === 0,
      'standby disconnected',
    );
    await pair.primary.query("UPDATE clients SET name = 'Grace' WHERE id = 1");
    assert.equal(await readName(a), 'Grace');
    assert.equal(await readName(b), 'Grace');
    assert.ok((await readName(b)) === 'Grace' && b.stats().l1Hits >= 1, 'B serves from its L1');

    // Asynchronous failover: the primary dies, the standby is promoted, the address follows it.
    cutB.cut(); // B will not hear the daemon's message
    await pair.primary.stop();
    await pair.replica.promote();
    const [row] = await pair.replica.query<{ tli: string }>(
      'SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) AS tli',
    );
    assert.equal(Number.parseInt(row!.tli, 16), 2);
    // Before the address moves, both instances still serve what the new primary never received.
    assert.equal(await readName(a), 'Grace');
    assert.equal(await readName(b), 'Grace');
    const movedAt = Date.now();
    proxy.retarget({ host: pair.replica.host, port: pair.replica.port });

    await eventually(
      async () => invalidated.length,
      (n) => n >= 1,
      'invalidation after the promotion',
    );
    const detectedMs = Date.now() - movedAt;
    const event = invalidated[0]!;
    assert.equal(event.kind, 'timeline');
    assert.equal(event.reason, 'timeline 1 -> 2');
    assert.equal(event.deletedKeys, 21, 'app:cache:k:client:1 and the 20 app:query: keys');
    assert.equal(await admin.get('app:cache:__generation'), String(event.generation));
    assert.equal(await admin.get('app:cache:__generation:timeline'), '2');
    assert.equal(await admin.get('app:query:q0'), null);
    assert.equal(await admin.get('app:cache:k:client:1'), null);
    // A heard the message: its L1 is gone at once.
    const invalidatedAt = Date.now();
    assert.equal(await readName(a), 'Ada');
    // B missed it: it may serve its stale L1 only within its own bound, never after.
    let bStaleMs = 0;
    while ((await readName(b)) === 'Grace' && Date.now() - invalidatedAt <= b.staleBoundMs!) {
      bStaleMs = Date.now() - invalidatedAt;
      await sleep(20);
    }
    await sleep(Math.max(0, invalidatedAt + b.staleBoundMs! - Date.now()));
    assert.equal(await readName(b), 'Ada');
    // The session prefix is never cleared.
    assert.deepEqual((await sessions.get(sessionId))?.data, { user: 'ada' });
    console.log(
      `# invalidation ${detectedMs} ms after the address moved (poll 300 ms, took ${event.durationMs} ms); ` +
        `B (message lost) served stale for ≤${bStaleMs} ms, bound ${b.staleBoundMs} ms`,
    );
  });

  test('an operator cut-over through the API needs the operator role and drops every L1', async () => {
    const address = daemon.address!;
    const base = `http://127.0.0.1:${address.port}/api/cache/invalidate`;
    const post = (token: string, body: unknown) =>
      fetch(base, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const denied = await post(VIEWER_TOKEN, { reason: 'restored to 10:42' });
    assert.equal(denied.status, 403);
    assert.equal(
      ((await denied.json()) as { error: { code: string } }).error.code,
      'WARDEN_E_HTTP_ROLE_DENIED',
    );
    const noReason = await post(OPERATOR_TOKEN, { reason: '' });
    assert.equal(noReason.status, 400);
    const admin = await newClient();
    const before = Number(await admin.get('app:cache:__generation'));
    const [a] = caches;
    assert.equal(await readName(a!), 'Ada'); // in A's L1 again
    await admin.set('app:cache:k:client:1', JSON.stringify('Restored'));
    const ok = await post(OPERATOR_TOKEN, { reason: 'cut over to the restore\u0007 of 10:42' });
    assert.equal(ok.status, 200);
    const report = (await ok.json()) as {
      kind: string;
      reason: string;
      generation: number;
      steps: unknown[];
    };
    assert.equal(report.kind, 'cut-over');
    assert.equal(report.reason, 'cut over to the restore  of 10:42', 'control characters dropped');
    assert.equal(report.generation, before + 2);
    assert.equal(await admin.get('app:cache:k:client:1'), null);
    await eventually(
      () => readName(a!),
      (name) => name === 'Ada',
      'A reloads from the database',
    );
  });

  test('warden cache invalidate announces a cut-over from the command line', async () => {
    const admin = await newClient();
    const before = Number(await admin.get('app:cache:__generation'));
    const config = path.join(dir, 'warden.yaml');
    await writeFile(config, stringify({ daemon: { cache: section.cache } }));
    await admin.set('app:cache:k:stale', '"x"');
    const run = await runWarden(
      ['cache', 'invalidate', '--reason', 'restored to 10:42', '--config', config, '--json'],
      {
        cwd: dir,
      },
    );
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as {
      kind: string;
      generation: number;
      deleted: Record<string, number>;
    };
    assert.equal(report.kind, 'cut-over');
    assert.equal(report.generation, before + 2);
    assert.ok(report.deleted['app:cache:']! >= 1);
    assert.equal(await admin.get('app:cache:k:stale'), null);
    const missing = await runWarden(['cache', 'invalidate', '--config', config], { cwd: dir });
    assert.equal(missing.code, 2, 'no --reason: a usage error');
  });

  test('a timeline.changed event from the WAL receiver invalidates once, even when the poll sees it too', async () => {
    await daemon.stop();
    // A daemon whose own poll reads once at start (baseline: timeline 2, as recorded).
    daemon = await startDaemon({ timelinePoll: '1h' });
    const admin = await newClient();
    const seen: Array<WardenEventMap['cache.invalidated']> = [];
    daemon.events.on('cache.invalidated', (e) => seen.push(e));
    const before = Number(await admin.get('app:cache:__generation'));
    await sleep(500); // the first poll has read timeline 2 = the recorded one: nothing to do
    assert.equal(seen.length, 0);
    daemon.events.emit('timeline.changed', {
      cluster: 'other',
      from: 2,
      to: 3,
      at: new Date().toISOString(),
    });
    daemon.events.emit('timeline.changed', {
      cluster: 'default',
      from: 2,
      to: 3,
      at: new Date().toISOString(),
    });
    daemon.events.emit('timeline.changed', {
      cluster: 'default',
      from: 2,
      to: 3,
      at: new Date().toISOString(),
    });
    await eventually(
      async () => seen.length,
      (n) => n >= 1,
      'invalidation after the event',
    );
    await sleep(300);
    assert.equal(seen.length, 1, 'one invalidation for one change, other clusters ignored');
    assert.equal(seen[0]!.reason, 'timeline 2 -> 3');
    assert.equal(Number(await admin.get('app:cache:__generation')), before + 2);
  });
});
