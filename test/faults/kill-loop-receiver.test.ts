import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type pg from 'pg';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import {
  currentLsn,
  durableWal,
  faultCount,
  formatLsn,
  parseLsn,
  recordedSlot,
  replicationSlots,
  seededRandom,
  sleep,
  verifyListed,
  waitUntil,
  WardenCli,
  type BackupListing,
  type WardenProcess,
} from './cli-faults.ts';

// Issue 11, fault suite: `warden wal stream` SIGKILLed again and again under a write load, with
// a forced pg_switch_wal() cadence so kills also land at segment boundaries. After every kill:
// the slot's position is never ahead of the WAL the repository holds durably, and the
// repository's WAL has no hole. At the end: `warden verify` is clean, and a restore to latest
// has every commit whose INSERT returned (synchronous commits, one id each).

const KILLS = faultCount(12);
let cluster: TestCluster;
let cli: WardenCli;

before(async () => {
  cluster = await startCluster();
  cli = new WardenCli(cluster, path.join(cluster.workDir, 'repo'));
  await cluster.query('CREATE TABLE acked (id int PRIMARY KEY, pad text NOT NULL)');
});
after(async () => {
  await cli?.killAll();
  await cluster?.stop();
});

/** Commits one row per transaction (synchronous_commit on) and remembers the ids that returned. */
function startWriter() {
  const acked: number[] = [];
  let stopping = false;
  const done = withClient(cluster.url(), async (client) => {
    await client.query('SET synchronous_commit = on');
    for (let id = 1; !stopping; id += 1) {
      await client.query('INSERT INTO acked VALUES ($1::int, repeat(md5($1::text), 32))', [id]);
      acked.push(id);
    }
  });
  let failure: unknown;
  done.catch((error: unknown) => (failure = error)); // reported by stop() and check()
  return {
    acked,
    check() {
      if (failure) throw failure;
    },
    async stop() {
      stopping = true;
      await done;
    },
  };
}

/** Waits until the stream has made durable everything the server had written when called. */
async function waitForCatchUp(repoDir: string, stream: WardenProcess): Promise<void> {
  const target = await currentLsn(cluster);
  await waitUntil(
    async () => {
      try {
        return (await durableWal(repoDir)).contiguousEnd >= target;
      } catch {
        return false; // the repository is not created yet
      }
    },
    () => !stream.hasExited(),
    `wal stream to reach ${formatLsn(target)}:\n${stream.output()}`,
  );
}

async function switchWal(): Promise<bigint> {
  const [row] = await cluster.query<{ lsn: string }>('SELECT pg_switch_wal()::text AS lsn');
  return parseLsn(row!.lsn);
}

test(`${KILLS} SIGKILLs of \`warden wal stream\` under load at random moments and segment boundaries: slot never ahead of durable WAL, no gap, no acknowledged commit lost`, async (t) => {
  const random = seededRandom();
  t.diagnostic(`WARDEN_FAULT_SEED=${random.seed}`);
  const repoDir = cli.repoDir;
  const writer = startWriter();
  const kills = { random: 0, afterSwitch: 0, whileArchivingSegment: 0 };
  let checks = 0;
  try {
    let stream = cli.spawn(['wal', 'stream']);
    await waitForCatchUp(repoDir, stream);
    // The base backup, taken while the stream runs (it waits for the stream to pass its end).
    const backup = await cli.json<{ backup: { id: string } }>(['backup']);
    const slot = await recordedSlot(repoDir);
    assert.ok(slot, 'the repository recorded its slot');

    for (let kill = 1; kill <= KILLS; kill += 1) {
      if (stream.hasExited()) assert.fail(`wal stream exited by itself:\n${stream.output()}`);
      writer.check();
      const mode = kill % 3;
      if (mode === 0) {
        // Anywhere under the write load.
        await sleep(random.between(0, 1500));
        kills.random += 1;
      } else if (mode === 1) {
        // Just after a segment switch: the receiver is finishing one segment, starting the next.
        await switchWal();
        await sleep(random.between(0, 150));
        kills.afterSwitch += 1;
      } else {
        // The moment the repository first holds all of a just-switched segment: the receiver
        // is then archiving it (compress, record, remove its partial) and opening the next.
        const switchedAt = await switchWal();
        await waitUntil(
          async () => (await durableWal(repoDir)).contiguousEnd >= switchedAt,
          () => !stream.hasExited(),
          'the switched segment',
        );
        kills.whileArchivingSegment += 1;
      }
      assert.ok(await stream.kill(), `wal stream was running at kill ${kill}`);

      // The walsender may outlive its client for a moment, but only the dead receiver could
      // have confirmed a position: read the slot now and after the server noticed.
      for (const settle of [0, 300]) {
        await sleep(settle);
        const row = (await replicationSlots(cluster)).find((s) => s.slot_name === slot);
        assert.ok(row, `slot ${slot} still exists after kill ${kill}`);
        const wal = await durableWal(repoDir);
        assert.equal(
          formatLsn(wal.contiguousEnd),
          formatLsn(wal.furthestEnd),
          `no hole in the repository's WAL after kill ${kill}`,
        );
        assert.ok(row.restart_lsn, 'the slot has a position');
        assert.ok(
          parseLsn(row.restart_lsn) <= wal.contiguousEnd,
          `kill ${kill}: slot ${slot} at ${row.restart_lsn} is ahead of the durable WAL (${formatLsn(wal.contiguousEnd)})`,
        );
        if (wal.streamStateFlushed !== undefined) {
          assert.ok(
            wal.streamStateFlushed <= wal.contiguousEnd,
            `kill ${kill}: stream-state says ${formatLsn(wal.streamStateFlushed)} is durable, the repository holds up to ${formatLsn(wal.contiguousEnd)}`,
          );
        }
        checks += 1;
      }
      stream = cli.spawn(['wal', 'stream']);
      // Let the new receiver take over before the next kill (it waits for the old walsender).
      await waitForCatchUp(repoDir, stream);
    }

    await writer.stop();
    const ackedBeforeEnd = writer.acked.length;
    await waitForCatchUp(repoDir, stream);
    assert.equal(await stream.interrupt(), 0, `the last stream stops cleanly on SIGINT:\n${stream.output()}`);

    const listing = await cli.json<BackupListing>(['backup', 'list']);
    assert.deepEqual(
      listing.backups.map((b) => b.id),
      [backup.backup.id],
    );
    const verify = await verifyListed(cli, [backup.backup.id]);
    assert.equal(verify.report.ok, true, `warden verify is clean: ${verify.others.join(', ')}`);

    const restored = await restoredIds(path.join(cluster.workDir, 'restored'));
    const missing = writer.acked.filter((id) => !restored.has(id));
    assert.deepEqual(
      missing.slice(0, 20),
      [],
      `${missing.length} acknowledged commit(s) missing after restore`,
    );
    assert.equal(restored.size, ackedBeforeEnd, 'nothing but acknowledged commits');
    t.diagnostic(
      `${KILLS} receiver kills (${kills.random} random, ${kills.afterSwitch} just after a segment switch, ${kills.whileArchivingSegment} while archiving a finished segment), ${checks} slot-vs-durable checks, 0 gaps, ${writer.acked.length} acknowledged commits, 0 lost`,
    );
  } finally {
    await writer.stop().catch(() => undefined);
  }
});

/** `warden restore --latest --start` into `dir`, reads the ids, stops the instance. */
async function restoredIds(dir: string): Promise<Set<number>> {
  const report = await cli.json<{ port: number }>(['restore', '--latest', '--target-dir', dir, '--start']);
  const instance = new LocalInstance({
    binaries: cluster.instance.binaries,
    dataDir: dir,
    port: report.port,
  });
  try {
    return await withClient(
      cluster.url().replace(`:${cluster.port}/`, `:${report.port}/`),
      async (client: pg.Client) => {
        const rows = (await client.query<{ id: number }>('SELECT id FROM acked')).rows;
        return new Set(rows.map((r) => r.id));
      },
    );
  } finally {
    await instance.stop({ mode: 'immediate' });
  }
}
