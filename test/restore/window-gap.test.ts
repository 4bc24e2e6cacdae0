import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup, type BackupReport } from '../../src/backup/base-backup.ts';
import { createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import type { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { segmentDataKey } from '../../src/repository/wal-archive.ts';
import type { RestorableWindow } from '../../src/repository/restorable-window.ts';
import { restore } from '../../src/restore/restore.ts';
import { verifyRepository } from '../../src/verify/repository-verify.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { rejectsWithCode, sleep } from '../faults/helpers.ts';
import { runWarden } from '../harness/cli.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { restoredLedger } from '../harness/restored.ts';
import { streamInto, type StreamingRepository } from '../harness/streaming.ts';

/**
 * A gap after a backup: B1, commits A, then a WAL segment (holding commit G) lost from the
 * archive, then B2 and commits C. B1 must restore to any point up to the gap; restore,
 * `backup list`, status and verify must all say the same.
 */
let cluster: TestCluster;
let stream: StreamingRepository<FsObjectStore>;
let b1: BackupReport['backup'];
let b2: BackupReport['backup'];
let gapSegment: string;
const before1: number[] = [];
const commitsA: Array<{ id: number; before: number; after: number; lsnAfter: string }> = [];
let commitG: { id: number; before: number; after: number };
let commitH: number;
const commitsC: number[] = [];

const repoDir = () => path.join(cluster.workDir, 'repo');
const db = () => `${cluster.url()}?sslmode=disable`;
const warden = (args: string[]) => runWarden(args, { cwd: cluster.workDir });

async function transfers(n: number, into: (t: { id: number; before: number; after: number }) => void) {
  await withClient(cluster.url(), async (client) => {
    for (let i = 0; i < n; i += 1) {
      const start = Date.now();
      const done = await randomTransfer(client);
      into({ id: done.id, before: start, after: Date.now() });
      await sleep(40);
    }
  });
}

/** Waits until the archive holds a complete segment's record (archiving runs behind the stream). */
async function waitForSegment(segment: string): Promise<void> {
  const key = segmentDataKey(1, segment).replace(/\.zst$/, '.json');
  for (let i = 0; i < 600 && !(await stream.store.stat(key)); i += 1) await sleep(50);
  assert.ok(await stream.store.stat(key), `segment ${segment} archived`);
}

async function listWindow(): Promise<RestorableWindow> {
  const list = await warden(['backup', 'list', '--repo', repoDir(), '--json']);
  assert.equal(list.code, 0, list.stderr);
  return (JSON.parse(list.stdout) as { window: RestorableWindow }).window;
}

before(async () => {
  cluster = await startCluster();
  await withClient(cluster.url(), (client) => createLedger(client));
  stream = streamInto(cluster);
  await transfers(2, (t) => before1.push(t.id));
  b1 = (
    await takeBackup({
      connection: stream.connection,
      store: stream.store,
      slotName: 'warden',
      compression: 'zstd',
    })
  ).backup;
  await withClient(cluster.url(), async (client) => {
    for (let i = 0; i < 6; i += 1) {
      const start = Date.now();
      const done = await randomTransfer(client);
      const [row] = (await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows;
      commitsA.push({ id: done.id, before: start, after: Date.now(), lsnAfter: row!.lsn });
      await sleep(40);
    }
  });
  const [aSegment] = await cluster.query<{ name: string }>(
    'SELECT pg_walfile_name(pg_current_wal_lsn()) AS name, pg_switch_wal()',
  );
  // Commit G alone in the segment that will be lost.
  await transfers(1, (t) => (commitG = t));
  const [gap] = await cluster.query<{ name: string }>(
    'SELECT pg_walfile_name(pg_current_wal_lsn()) AS name, pg_switch_wal()',
  );
  gapSegment = gap!.name;
  assert.notEqual(gapSegment, aSegment!.name);
  // The stream goes on after the segment that will be lost: WAL after the gap, no backup yet.
  await transfers(1, (t) => (commitH = t.id));
  await stream.waitForArchive();
  await waitForSegment(aSegment!.name);
  await waitForSegment(gapSegment);
  // The loss: data and record of one segment after B1's end, from the middle of the archive.
  await rm(path.join(repoDir(), segmentDataKey(1, gapSegment)));
  await rm(path.join(repoDir(), segmentDataKey(1, gapSegment).replace(/\.zst$/, '.json')));
});

after(async () => {
  await stream?.stop();
  await cluster?.stop();
});

const aIds = (through: number) => commitsA.slice(0, through + 1).map((c) => c.id);

test('with no backup after the gap, backup list shows the range up to it (not "empty") and --latest reaches it', async () => {
  const window = await listWindow();
  assert.equal(window.ranges.length, 1);
  assert.equal(window.earliest, b1.endTime);
  assert.deepEqual(window.ranges[0]!.backups, [b1.id]);
  assert.equal(window.ranges[0]!.gapAfter?.firstMissingSegment, gapSegment);
  const human = await warden(['backup', 'list', '--repo', repoDir()]);
  assert.doesNotMatch(human.stdout, /restorable window: empty/);
  assert.match(human.stdout, new RegExp(`first missing segment ${gapSegment}`));

  const ledger = await restoredLedger(cluster, stream.store, 'gap-latest', { kind: 'latest' });
  assert.deepEqual(ledger.transfers, [...before1, ...aIds(5)], 'every commit before the gap, none after');
  // A time after the gap has no backup to start from: outside the window, which ends at the gap.
  await rejectsWithCode(
    restore({
      store: stream.store,
      target: { kind: 'time', time: new Date() },
      targetDir: path.join(cluster.workDir, 'gap-after'),
    }),
    'WARDEN_E_TARGET_OUTSIDE_WINDOW',
  );
  assert.ok(ledger.balanced && ledger.consistent);
});

test('after a second backup: two ranges in backup list, status and verify, each anchored by its backup', async () => {
  b2 = (
    await takeBackup({
      connection: stream.connection,
      store: stream.store,
      slotName: 'warden',
      compression: 'zstd',
    })
  ).backup;
  await transfers(3, (t) => commitsC.push(t.id));
  await stream.waitForArchive();

  const window = await listWindow();
  assert.deepEqual(
    window.ranges.map((r) => r.backups),
    [[b1.id], [b2.id]],
  );
  assert.equal(window.gaps.length, 1);
  assert.equal(window.gaps[0]!.firstMissingSegment, gapSegment);
  assert.equal(window.ranges[0]!.gapAfter?.firstMissingSegment, gapSegment);
  assert.ok(parseLsn(window.ranges[0]!.latestLsn) <= parseLsn(window.gaps[0]!.from));
  assert.ok(Date.parse(window.ranges[0]!.latest) >= commitsA.at(-1)!.before - 1000);
  assert.ok(
    Date.parse(window.ranges[0]!.latest) < commitG.after,
    'the first range ends before the lost commit',
  );
  assert.equal(window.earliest, b2.endTime, 'the top-level window stays the newest range');

  const status = await warden(['status', '--repo', repoDir(), '--db', db(), '--json']);
  const cluster0 = (JSON.parse(status.stdout) as { clusters: Array<{ restorableWindow: RestorableWindow }> })
    .clusters[0]!;
  assert.deepEqual(
    cluster0.restorableWindow.ranges.map((r) => r.backups),
    [[b1.id], [b2.id]],
  );
  const human = await warden(['status', '--repo', repoDir(), '--db', db()]);
  assert.match(human.stdout, new RegExp(`then WAL gap ${window.gaps[0]!.from}`));

  const report = await verifyRepository({ store: stream.store });
  const v1 = report.backups.find((b) => b.id === b1.id)!;
  const v2 = report.backups.find((b) => b.id === b2.id)!;
  assert.equal(v1.restorable, true);
  assert.equal(v1.restorableTo?.gapAfter?.firstMissingSegment, gapSegment, 'B1 restores up to the gap');
  assert.equal(v1.restorableTo?.lsn, window.ranges[0]!.latestLsn);
  assert.equal(v2.restorable, true);
  assert.equal(v2.restorableTo?.gapAfter, undefined);
  assert.deepEqual(
    report.window?.ranges.map((r) => r.backups),
    [[b1.id], [b2.id]],
  );
  assert.ok(
    report.problems.some((p) => p.kind === 'wal-gap'),
    'the gap is still a problem',
  );
  // The library wrote this repository without a signing key: the CLI reads it with --allow-unsigned.
  const cli = await warden(['verify', '--repo', repoDir(), '--allow-unsigned']);
  assert.match(cli.stdout, new RegExp(`backup ${b1.id}: restorable up to .* then a WAL gap`));
});

test('restore --backup B1 works after the gap, and reaches what was committed before B1', async () => {
  const ledger = await restoredLedger(cluster, stream.store, 'gap-backup', { kind: 'backup', id: b1.id });
  assert.deepEqual(ledger.transfers, before1);
  assert.ok(ledger.balanced && ledger.consistent);
});

test('--to-time and --to-lsn before the gap restore from B1 to exactly that point', async () => {
  const time = new Date(Math.floor((commitsA[2]!.after + commitsA[3]!.before) / 2));
  const byTime = await restoredLedger(cluster, stream.store, 'gap-time', { kind: 'time', time });
  assert.deepEqual(byTime.transfers, [...before1, ...aIds(2)]);
  const byLsn = await restoredLedger(cluster, stream.store, 'gap-lsn', {
    kind: 'lsn',
    lsn: parseLsn(commitsA[3]!.lsnAfter),
  });
  assert.deepEqual(byLsn.transfers, [...before1, ...aIds(3)]);
  assert.ok(byTime.balanced && byLsn.balanced);
});

test('a target inside the gap is refused with WARDEN_E_WAL_GAP naming it; the target is not left behind', async () => {
  for (const [name, target] of [
    ['time', { kind: 'time' as const, time: new Date(commitG.after) }],
    ['lsn', { kind: 'lsn' as const, lsn: parseLsn(b1.endLsn) + 0x1000000n * 2n }],
  ] as const) {
    const targetDir = path.join(cluster.workDir, `gap-in-${name}`);
    const error = await rejectsWithCode(
      restore({ store: stream.store, target, targetDir }),
      'WARDEN_E_WAL_GAP',
    );
    assert.equal((error.details.gap as { firstMissingSegment: string }).firstMissingSegment, gapSegment);
    assert.match(error.message, new RegExp(gapSegment));
    assert.equal(existsSync(targetDir), false);
  }
  const cli = await warden([
    'restore',
    '--to-time',
    new Date(commitG.after).toISOString(),
    '--repo',
    repoDir(),
    '--target-dir',
    path.join(cluster.workDir, 'gap-in-cli'),
    '--allow-unsigned',
  ]);
  assert.equal(cli.code, 5, cli.stderr);
  assert.match(cli.stderr, /WARDEN_E_WAL_GAP.*lies in a WAL gap/);
});

test('--latest after the second backup reaches the end of the newest range', async () => {
  const ledger = await restoredLedger(cluster, stream.store, 'gap-latest-2', { kind: 'latest' });
  // G and H are in B2's data files; C was replayed from the WAL after B2.
  assert.deepEqual(ledger.transfers, [...before1, ...aIds(5), commitG.id, commitH, ...commitsC]);
  assert.ok(ledger.balanced && ledger.consistent);
});
