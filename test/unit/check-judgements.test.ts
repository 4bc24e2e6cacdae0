import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CLOCK_FAIL_MS, CLOCK_WARN_MS, checkClock } from '../../src/check/clock-check.ts';
import { reportOf } from '../../src/check/run-checks.ts';
import type { ServerSnapshot } from '../../src/check/server-snapshot.ts';
import { checkWalSettings } from '../../src/check/wal-settings-check.ts';
import { fail, ok, warn } from '../../src/check/check-result.ts';

// The judgements of `warden check` that need no server: numbers in, a verdict with its fix out.
// (The checks that talk to PostgreSQL, S3 or a directory are tested in test/cli/check.test.ts.)

function snapshot(overrides: Partial<ServerSnapshot> = {}): ServerSnapshot {
  return {
    role: 'warden',
    serverVersion: '15.4',
    serverVersionNum: 150004,
    walLevel: 'replica',
    maxWalSenders: 10,
    maxReplicationSlots: 10,
    maxSlotWalKeepSizeMb: -1,
    walSenders: [],
    slots: [],
    canReplicate: true,
    superuser: false,
    canSwitchWal: false,
    inRecovery: false,
    tls: { used: false },
    clock: { server: new Date(1_000_000), localBefore: 1_000_000, localAfter: 1_000_000 },
    ...overrides,
  };
}

const at = (serverMs: number, before: number, after: number) => ({
  server: new Date(serverMs),
  localBefore: before,
  localAfter: after,
});

test('a clock skew within 1 s is fine, beyond it a warning, beyond 30 s a failure (both directions)', () => {
  assert.equal(checkClock(at(1_000_500, 1_000_000, 1_000_000)).status, 'ok');
  assert.equal(checkClock(at(1_000_000 + CLOCK_WARN_MS + 500, 1_000_000, 1_000_000)).status, 'warn');
  assert.equal(checkClock(at(1_000_000 - CLOCK_WARN_MS - 500, 1_000_000, 1_000_000)).status, 'warn');
  const far = checkClock(at(1_000_000 + CLOCK_FAIL_MS + 1, 1_000_000, 1_000_000));
  assert.equal(far.status, 'fail');
  assert.equal(far.code, 'WARDEN_E_CLOCK_SKEW');
  assert.equal(far.details?.skewMs, CLOCK_FAIL_MS + 1);
  assert.equal(checkClock(at(1_000_000 - CLOCK_FAIL_MS - 1, 1_000_000, 1_000_000)).status, 'fail');
});

test('only the skew beyond half the round trip counts: a slow answer is not a skewed clock', () => {
  // Asked at 0, answered at 4 s: the server's time lies anywhere in that span.
  assert.equal(checkClock(at(3_900, 0, 4_000)).status, 'ok');
  assert.equal(checkClock(at(4_000 + CLOCK_WARN_MS + 1, 0, 4_000)).status, 'warn');
});

test('wal_level minimal fails with the statement that fixes it; replica and logical pass', () => {
  const [minimal] = checkWalSettings(snapshot({ walLevel: 'minimal' }));
  assert.equal(minimal!.status, 'fail');
  assert.equal(minimal!.code, 'WARDEN_E_WAL_LEVEL_MINIMAL');
  assert.match(minimal!.fix!, /wal_level = replica/);
  assert.equal(checkWalSettings(snapshot({ walLevel: 'logical' }))[0]!.status, 'ok');
});

test("WAL senders: Warden needs two; other clients' senders are taken, this repository's own stream is not", () => {
  const senders = (s: Partial<ServerSnapshot>, own = {}) => checkWalSettings(snapshot(s), own)[1]!;
  assert.equal(senders({ maxWalSenders: 2 }).status, 'ok');
  assert.equal(senders({ maxWalSenders: 1 }).code, 'WARDEN_E_NO_WAL_SENDERS');
  assert.equal(senders({ maxWalSenders: 0 }).status, 'fail');
  assert.equal(senders({ maxWalSenders: 3, walSenders: ['standby1', 'standby2'] }).status, 'fail');
  const id = 'ab'.repeat(16);
  assert.equal(
    senders({ maxWalSenders: 3, walSenders: ['standby1', `warden:${id}`] }, { repositoryId: id }).status,
    'ok',
  );
  assert.match(senders({ maxWalSenders: 1 }).fix!, /ALTER SYSTEM SET max_wal_senders = 10/);
});

test("replication slots: two for Warden are fine, one a warning, none a failure; the repository's own slot counts as its own", () => {
  const slots = (s: Partial<ServerSnapshot>, own = {}) => checkWalSettings(snapshot(s), own)[2]!;
  assert.equal(slots({ maxReplicationSlots: 2 }).status, 'ok');
  assert.equal(slots({ maxReplicationSlots: 1 }).status, 'warn');
  const none = slots({ maxReplicationSlots: 2, slots: ['a', 'b'] });
  assert.equal(none.status, 'fail');
  assert.equal(none.code, 'WARDEN_E_NO_REPLICATION_SLOTS');
  assert.equal(slots({ maxReplicationSlots: 2, slots: ['a', 'mine'] }, { slot: 'mine' }).status, 'warn');
});

test('the exit status is that of the first failed check; warnings alone exit 0', () => {
  assert.equal(reportOf([ok('a', 'x'), warn('b', 'y')]).exitCode, 0);
  assert.equal(reportOf([ok('a', 'x'), warn('b', 'y')]).ok, true);
  const report = reportOf([
    ok('a', 'x'),
    fail('b', 'WARDEN_E_REPO_IO', 'y'),
    fail('c', 'WARDEN_E_WAL_LEVEL_MINIMAL', 'z'),
  ]);
  assert.equal(report.ok, false);
  assert.equal(report.exitCode, 8);
});
