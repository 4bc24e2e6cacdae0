import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parsePatroniCluster } from '../../src/db/patroni-topology.ts';

// Patroni's GET /cluster comes from the network: the parser is checked against hostile and broken
// documents (no server needed). What it accepts is what the router routes to.

const leader = { name: 'pg1', role: 'leader', state: 'running', host: '10.0.0.1', port: 5432, timeline: 3 };
const replica = { name: 'pg2', role: 'replica', state: 'streaming', host: '10.0.0.2', port: 5432, lag: 0 };
const doc = (members: unknown[], extra: Record<string, unknown> = {}) =>
  JSON.stringify({ ...extra, members });
const parse = (text: string) => parsePatroniCluster(text, 'http://p:8008');

describe('parsePatroniCluster', () => {
  test('a valid document: the leader, serving replicas least lag first, unknown fields ignored', () => {
    const members = doc([
      { ...replica, name: 'far', host: '10.0.0.3', lag: 9000 },
      { ...replica, name: 'unknown-lag', host: '10.0.0.4', lag: 'unknown' },
      leader,
      replica,
      { ...replica, name: 'quiet', host: '10.0.0.5', tags: { noloadbalance: true } },
      { ...replica, name: 'down', host: '10.0.0.6', state: 'stopped' },
    ]);
    const view = parse(`{"scope":"demo","pause":false,"__proto__":{"polluted":true},${members.slice(1)}`);
    assert.equal(view.leader?.name, 'pg1');
    assert.equal(view.leader?.timeline, 3);
    assert.deepEqual(
      view.replicas.map((m) => m.name),
      ['pg2', 'far', 'unknown-lag'],
    );
    assert.equal(view.ignored, 0);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test('member entries of the wrong shape are left out and counted, never used', () => {
    const hostile: unknown[] = [
      { ...replica, host: 'db; rm -rf /' },
      { ...replica, host: '' },
      { ...replica, host: 'a'.repeat(300) },
      { ...replica, host: ['10.0.0.9'] },
      { ...replica, host: 42 },
      { ...replica, port: '5432' },
      { ...replica, port: 0 },
      { ...replica, port: 65536 },
      { ...replica, port: 5432.5 },
      { ...replica, port: -1 },
      { ...replica, role: 42 },
      { ...replica, role: 'x'.repeat(100) },
      { ...replica, name: '' },
      { ...replica, timeline: 0 },
      { ...replica, lag: -5 },
      { ...replica, tags: 'noloadbalance' },
      null,
      'pg3',
      7,
      [],
    ];
    const view = parse(doc([leader, ...hostile]));
    assert.equal(view.leader?.name, 'pg1');
    assert.deepEqual(view.replicas, []);
    assert.equal(view.ignored, hostile.length);
  });

  test('unknown roles and states route nowhere; a leader not running is no leader', () => {
    const view = parse(
      doc([
        { ...leader, state: 'stopped' },
        { ...replica, role: 'standby_leader' },
        { ...replica, host: '10.0.0.7', role: 'admin' },
        { ...replica, host: '10.0.0.8', state: 'crashed' },
      ]),
    );
    assert.equal(view.leader, undefined);
    assert.deepEqual(view.replicas, []);
  });

  test('documents that cannot be trusted as a whole are refused', () => {
    const refused = [
      '',
      '<html>not json</html>',
      'null',
      '[]',
      '"members"',
      JSON.stringify({ members: 'all' }),
      JSON.stringify({ members: {} }),
      JSON.stringify({}),
      JSON.stringify({ members: Array.from({ length: 1001 }, () => replica) }),
      // Two running leaders: split brain or a forged answer; neither is followed.
      doc([leader, { ...leader, name: 'pg9', host: '10.0.0.9' }]),
      // Two members at one address: which role is it?
      doc([leader, { ...replica, host: leader.host, port: leader.port }]),
      ' '.repeat(256 * 1024 + 1),
    ];
    for (const text of refused) {
      assert.throws(() => parse(text), Error, text.slice(0, 60));
    }
  });

  test('a deeply nested or huge document is refused without a crash', () => {
    assert.throws(() => parse('['.repeat(300_000)));
    const nested = doc([{ ...leader, tags: { a: JSON.parse('['.repeat(2000) + ']'.repeat(2000)) } }]);
    assert.equal(parse(nested).leader?.name, 'pg1');
  });
});
