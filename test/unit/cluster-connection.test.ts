import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '../../src/errors.ts';
import { connectionFromUrl, isClusterConnection, pinnedTo } from '../../src/postgres/connection-config.ts';
import { parseCluster, permanentSlots, redactUrl } from '../../src/postgres/patroni-client.ts';

test('a multi-host URL lists every host (first one as host/port) and keeps target_session_attrs', () => {
  const c = connectionFromUrl(
    'postgres://u:p%40ss@db1:5433,db2,[::1]:6000/app?target_session_attrs=read-write',
  );
  assert.deepEqual(c.hosts, [
    { host: 'db1', port: 5433 },
    { host: 'db2', port: 5432 },
    { host: '::1', port: 6000 },
  ]);
  assert.equal(c.host, 'db1');
  assert.equal(c.port, 5433);
  assert.equal(c.password, 'p@ss');
  assert.equal(c.database, 'app');
  assert.equal(c.targetSessionAttrs, 'read-write');
  assert.equal(isClusterConnection(c), true);
  const pinned = pinnedTo(c, { host: 'db2', port: 5432 });
  assert.equal(isClusterConnection(pinned), false);
  assert.equal(pinned.hosts, undefined);
  assert.equal(pinned.host, 'db2');
  assert.equal(isClusterConnection(connectionFromUrl('postgres://u@db1/app')), false);
});

test('a multi-host URL with an empty host, a bad port or an unknown target_session_attrs is refused', () => {
  for (const url of [
    'postgres://u@db1:5432,,db3/app',
    'postgres://u@db1:5432,db2:99999/app',
    'postgres://u@db1,db2/app?target_session_attrs=whatever',
  ]) {
    assert.throws(
      () => connectionFromUrl(url),
      (e: unknown) => isWardenError(e, 'WARDEN_E_CONFIG_INVALID'),
      url,
    );
  }
});

test("Patroni's /cluster answer is validated member by member", () => {
  const good = parseCluster(
    {
      members: [
        { name: 'node1', role: 'leader', state: 'running', host: '10.0.0.1', port: 5432, timeline: 3 },
        { name: 'node2', role: 'replica', state: 'streaming', host: '10.0.0.2', port: 5432, lag: 16 },
      ],
    },
    'http://x',
  );
  assert.equal(good.members[0]!.timeline, 3);
  assert.equal(good.members[1]!.lagBytes, 16);
  for (const bad of [
    {},
    { members: 'x' },
    { members: [{ role: 'leader', host: 'h', port: 5432 }] },
    { members: [{ name: 'n', host: 'h', port: 70000 }] },
    { members: [{ name: 'n', host: 'evil host/x', port: 5432 }] },
  ]) {
    assert.throws(
      () => parseCluster(bad, 'http://x'),
      (e: unknown) => isWardenError(e, 'WARDEN_E_PATRONI_API'),
      JSON.stringify(bad),
    );
  }
});

test("Patroni's permanent physical slots are read from /config; URLs are printed without credentials", () => {
  assert.deepEqual(
    permanentSlots({ slots: { warden: { type: 'physical' }, logi: { type: 'logical' }, other: null } }),
    ['other', 'warden'],
  );
  assert.deepEqual(permanentSlots({}), []);
  assert.equal(redactUrl('http://admin:secret@db1:8008/'), 'http://db1:8008');
});
