import assert from 'node:assert/strict';
import http from 'node:http';
import pg from 'pg';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  createDatabase,
  optionsFromPatroni,
  readPatroniTopology,
  type Database,
} from '../../src/db/index.ts';
import { isDataLayerError } from '../../src/errors.ts';
import { Registry } from 'prom-client';
import { startPrimaryWithReplica, type PrimaryWithReplica } from '../../../../test/harness/replica.ts';

// The router's topology from Patroni's GET /cluster. The HTTP server here is a fixture, not
// Patroni: it serves the documented /cluster shape (https://patroni.readthedocs.io/en/latest/rest_api.html)
// naming the real PostgreSQL primary and streaming replica started by the harness, so the
// routing runs against real servers. test/cache-coherence/patroni-failover-invalidation.test.ts
// builds the router from a real Patroni cluster.

function serve(
  answer: () => { status: number; body: string },
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    const { status, body } = request.url === '/cluster' ? answer() : { status: 404, body: '{}' };
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(body);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}

describe('topology from Patroni', { timeout: 180_000 }, () => {
  let pair: PrimaryWithReplica;
  let members: unknown[];
  const closers: Array<() => Promise<void>> = [];
  let db: Database | undefined;

  before(async () => {
    pair = await startPrimaryWithReplica();
    members = [
      {
        name: 'pg2',
        role: 'replica',
        state: 'streaming',
        host: '127.0.0.1',
        port: pair.replica.port,
        timeline: 1,
        lag: 0,
      },
      {
        name: 'pg1',
        role: 'leader',
        state: 'running',
        host: '127.0.0.1',
        port: pair.primary.port,
        timeline: 1,
      },
      { name: 'pg3', role: 'replica', state: 'stopped', host: '127.0.0.1', port: 1, lag: 'unknown' },
      { name: 'evil', role: 'replica', state: 'streaming', host: 'db; rm -rf /', port: 5432 },
      { name: 'big', role: 'replica', state: 'streaming', host: '127.0.0.1', port: 70000 },
    ];
  });
  after(async () => {
    await db?.close();
    for (const close of closers) await close();
    await pair?.stop();
  });

  test('the leader becomes the primary and serving replicas take reads; invalid members are ignored', async () => {
    const broken = await serve(() => ({ status: 200, body: '<html>not json' }));
    const patroni = await serve(() => ({ status: 200, body: JSON.stringify({ scope: 'demo', members }) }));
    closers.push(broken.close, patroni.close);
    const source = {
      urls: [broken.url, patroni.url],
      connection: { user: 'postgres', password: pair.primary.password, database: 'postgres' },
    };
    const topology = await readPatroniTopology(source);
    assert.equal(topology.source, patroni.url, 'the first endpoint answered nonsense');
    assert.equal(topology.leader.name, 'pg1');
    assert.deepEqual(
      topology.replicas.map((m) => m.name),
      ['pg2'],
      'stopped, malformed host and out-of-range port left out',
    );
    const options = await optionsFromPatroni(source);
    db = createDatabase({ ...options, environment: 'dev', maxReplicaLagMs: 60_000 });
    await db.start();
    await db.query('CREATE TABLE IF NOT EXISTS t (id int)');
    const write = await db.query<{ port: number }>("SELECT current_setting('port')::int AS port");
    assert.equal(write.rows[0]!.port, pair.primary.port);
    await pair.replica.waitForReplay();
    let replicaReads = 0;
    for (let i = 0; i < 40 && replicaReads === 0; i++) {
      const read = await db.query<{ port: number }>("SELECT current_setting('port')::int AS port", [], {
        role: 'read',
      });
      if (read.rows[0]!.port === pair.replica.port) replicaReads++;
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(replicaReads, 1, 'a read reached the replica Patroni named');
  });

  test('the router re-reads Patroni: members come and go, a bad answer keeps the last good topology', async () => {
    let answer = { status: 200, body: JSON.stringify({ members }) };
    const patroni = await serve(() => answer);
    closers.push(patroni.close);
    const registry = new Registry();
    const followed = createDatabase({
      patroni: {
        urls: [patroni.url],
        connection: { user: 'postgres', password: pair.primary.password, database: 'postgres' },
        refreshIntervalMs: 100,
      },
      environment: 'dev',
      maxReplicaLagMs: 60_000,
      metrics: { registry },
    });
    const key = (port: number) => `127.0.0.1:${port}`;
    const poolKeys = () => Object.keys(followed.stats().pools.read).sort();
    const waitFor = async (what: string, check: () => boolean | Promise<boolean>) => {
      for (let i = 0; !(await check()); i++) {
        assert.ok(i < 300, what);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    try {
      await followed.start();
      assert.deepEqual(poolKeys(), [key(pair.primary.port), key(pair.replica.port)].sort());
      assert.equal(followed.stats().primary, key(pair.primary.port));
      // A read held on the replica while Patroni stops listing it: it finishes there (not cut and
      // retried on the primary), then the pool goes.
      await pair.replica.waitForReplay();
      const portSql = "SELECT current_setting('port')::int AS port";
      const readPort = async () =>
        (await followed.query<{ port: number }>(portSql, [], { role: 'read' })).rows[0]!.port;
      await waitFor('a read reaches the replica', async () => (await readPort()) === pair.replica.port);
      const failuresBefore = followed.stats().routing.replicaFailures;
      const held = followed.query<{ port: number }>(`${portSql}, pg_sleep(0.5)`, [], { role: 'read' });
      const leaderOnly = { members: members.filter((m) => (m as { role: string }).role === 'leader') };
      answer = { status: 200, body: JSON.stringify(leaderOnly) };
      await waitFor('the replica is dropped', () => poolKeys().length === 1);
      assert.equal((await held).rows[0]!.port, pair.replica.port);
      assert.equal(followed.stats().routing.replicaFailures, failuresBefore);
      assert.deepEqual(poolKeys(), [key(pair.primary.port)]);
      const changes = followed.stats().topology!.changes;
      // Garbage, a leaderless answer and a forged second leader: counted, the membership stays.
      for (const body of [
        '<html>',
        JSON.stringify({ members: [members[0]] }),
        JSON.stringify({
          members: [...leaderOnly.members, { ...leaderOnly.members[0]!, name: 'x', port: 1 }],
        }),
      ]) {
        const before = followed.stats().topology!;
        answer = { status: 200, body };
        await waitFor('the bad answer is read', () => {
          const now = followed.stats().topology!;
          return now.failures + now.leaderless > before.failures + before.leaderless;
        });
      }
      assert.deepEqual(poolKeys(), [key(pair.primary.port)]);
      assert.equal(followed.stats().topology!.changes, changes);
      assert.ok(followed.stats().topology!.lastError);
      assert.equal((await followed.query('SELECT 1 AS one')).rows[0]!.one, 1);
      answer = { status: 200, body: JSON.stringify({ members }) };
      await waitFor('the replica is back', () => poolKeys().length === 2);
      const metrics = await registry.metrics();
      assert.match(metrics, /warden_db_topology_refreshes_total\{database="default",result="failed"\} [1-9]/);
      assert.match(
        metrics,
        /warden_db_topology_refreshes_total\{database="default",result="leaderless"\} [1-9]/,
      );
      assert.match(metrics, /warden_db_topology_members\{database="default"\} 2/);
      assert.match(metrics, new RegExp(`hikaricp_connections\\{pool="read@${key(pair.replica.port)}"\\}`));
    } finally {
      await followed.close();
    }
  });

  test('a write that finds no primary asks Patroni at once and is retried on the leader it names', async () => {
    // At first Patroni (the fixture) names a leader nobody listens on; the periodic refresh is an
    // hour away, so only the refresh the failed write asks for can find the real primary.
    const dead = { ...(members[1] as object), port: 1 };
    let answer = { status: 200, body: JSON.stringify({ members: [members[0], dead] }) };
    const patroni = await serve(() => answer);
    closers.push(patroni.close);
    const followed = createDatabase({
      patroni: {
        urls: [patroni.url],
        connection: { user: 'postgres', password: pair.primary.password, database: 'postgres' },
        refreshIntervalMs: 3_600_000,
      },
      environment: 'dev',
      failoverWaitMs: 20_000,
    });
    try {
      await followed.start();
      assert.equal(followed.stats().primary, '127.0.0.1:1');
      answer = { status: 200, body: JSON.stringify({ members }) };
      const { rows } = await followed.query<{ port: number }>("SELECT current_setting('port')::int AS port");
      assert.equal(rows[0]!.port, pair.primary.port);
      assert.equal(followed.stats().primary, `127.0.0.1:${pair.primary.port}`);
      assert.ok(followed.stats().routing.writeRetries > 0);
    } finally {
      await followed.close();
    }
  });

  test('without failoverWaitMs a write that finds no primary fails at once with its code', async () => {
    const dead = { ...(members[1] as object), port: 1 };
    const patroni = await serve(() => ({ status: 200, body: JSON.stringify({ members: [dead] }) }));
    closers.push(patroni.close);
    const followed = createDatabase({
      patroni: { urls: [patroni.url], connection: { user: 'postgres', database: 'postgres' } },
      environment: 'dev',
      failoverWaitMs: 0,
    });
    try {
      await assert.rejects(followed.query('SELECT 1'), (e: unknown) =>
        isDataLayerError(e, 'WARDEN_E_NO_PRIMARY'),
      );
      assert.equal(followed.stats().routing.writeRetries, 0);
    } finally {
      await followed.close();
    }
  });

  test('a write refused read-only (25006) never ran: it is retried until the server takes writes, and lands once', async () => {
    const admin = new pg.Client({ connectionString: pair.primary.url() });
    await admin.connect();
    const readOnly = async (on: boolean) => {
      await admin.query(
        on
          ? 'ALTER SYSTEM SET default_transaction_read_only = on'
          : 'ALTER SYSTEM RESET default_transaction_read_only',
      );
      await admin.query('SELECT pg_reload_conf()');
      // The reload is asynchronous: wait until a new session starts with the setting.
      for (let i = 0; ; i++) {
        const probe = new pg.Client({ connectionString: pair.primary.url() });
        await probe.connect();
        const { rows } = await probe.query<{ ro: string }>(
          "SELECT current_setting('default_transaction_read_only') AS ro",
        );
        await probe.end();
        if (rows[0]?.ro === (on ? 'on' : 'off')) return;
        assert.ok(i < 200, 'the reload took effect');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    await admin.query('CREATE TABLE IF NOT EXISTS ro_writes (id int PRIMARY KEY)');
    await readOnly(true);
    // Created now, so every session they open is read-only from its start.
    const waiting = createDatabase({
      primary: pair.primary.url(),
      environment: 'dev',
      failoverWaitMs: 30_000,
    });
    const failing = createDatabase({ primary: pair.primary.url(), environment: 'dev', failoverWaitMs: 0 });
    try {
      await assert.rejects(
        failing.query('INSERT INTO ro_writes VALUES (2)'),
        (e: unknown) =>
          isDataLayerError(e, 'WARDEN_E_FAILOVER') &&
          e.details.sqlstate === '25006' &&
          e.details.statementOutcome === 'not-run',
      );
      const write = waiting.query('INSERT INTO ro_writes VALUES (1)');
      for (let i = 0; waiting.stats().routing.writeRetries < 2; i++) {
        assert.ok(i < 600, 'the refused write is being retried');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await readOnly(false);
      await write;
      const { rows } = await admin.query<{ id: number }>('SELECT id FROM ro_writes ORDER BY id');
      assert.deepEqual(
        rows.map((r) => r.id),
        [1],
      );
    } finally {
      await readOnly(false);
      await admin.end();
      await Promise.all([waiting.close(), failing.close()]);
    }
  });

  test('no leader, and no endpoint answering, are refused with their codes', async () => {
    const leaderless = await serve(() => ({
      status: 200,
      body: JSON.stringify({ members: [members[0]] }),
    }));
    const down = await serve(() => ({ status: 503, body: '{}' }));
    closers.push(leaderless.close, down.close);
    const source = { connection: {} };
    await assert.rejects(readPatroniTopology({ ...source, urls: [leaderless.url] }), (e: unknown) =>
      isDataLayerError(e, 'WARDEN_E_NO_PRIMARY'),
    );
    await assert.rejects(
      readPatroniTopology({ ...source, urls: [down.url, 'http://127.0.0.1:1'] }),
      (e: unknown) => isDataLayerError(e, 'WARDEN_E_DB_UNREACHABLE'),
    );
  });
});
