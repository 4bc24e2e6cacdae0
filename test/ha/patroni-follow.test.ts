import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { WardenEvents, type WardenEventMap } from '../../src/events/warden-events.ts';
import { connectionFromUrl, type ConnectionConfig } from '../../src/postgres/connection-config.ts';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { restore } from '../../src/restore/restore.ts';
import type { RestoreTarget } from '../../src/restore/restore-planner.ts';
import { switchover } from '../../src/ha/switchover.ts';
import { collectTopology, slotSurvival } from '../../src/postgres/cluster-topology.ts';
import { verifyRepository } from '../../src/verify/repository-verify.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { startPatroniCluster, type PatroniCluster } from '../harness/patroni-cluster.ts';
import { withClient } from '../harness/postgres.ts';
import { tempDir } from '../harness/temp-dir.ts';

/**
 * One real 3-node Patroni cluster (PostgreSQL 15 + etcd) for the file: Warden's WAL receiver is
 * given the cluster as a multi-host URL and Patroni's REST endpoints, a write workload runs,
 * and the leader changes twice — a switchover, then a failover (SIGKILL of the leader's Patroni
 * and PostgreSQL). The stream must follow each time with no gap, and restores must be exact.
 */
const SLOT = 'warden_ha';
let cluster: PatroniCluster;
let store: FsObjectStore;
let connection: ConnectionConfig;
const events = new WardenEvents();
const timelineChanges: Array<WardenEventMap['timeline.changed']> = [];
let flushed: { lsn: bigint; timeline: number } = { lsn: 0n, timeline: 0 };
const abort = new AbortController();
let receiving: Promise<void>;
let receiver: WalReceiver;

before(async () => {
  cluster = await startPatroniCluster({ slots: { [SLOT]: { type: 'physical' } } });
  store = new FsObjectStore(path.join(await tempDir('ha-repo'), 'repo'));
  connection = {
    ...connectionFromUrl(cluster.multiHostUrl()),
    patroni: { urls: cluster.restUrls() },
  };
  events.on('timeline.changed', (e) => timelineChanges.push(e));
  receiver = new WalReceiver({
    connection,
    store,
    slotName: SLOT,
    continueAfterGap: true,
    signal: abort.signal,
    events,
    eventSubject: { cluster: 'ha' },
    onFlush: (lsn, timeline) => (flushed = { lsn, timeline }),
  });
  receiving = receiver.run();
  await cluster.query(
    'leader',
    'CREATE TABLE ledger (n int PRIMARY KEY, tli int, at timestamptz DEFAULT now())',
  );
});

after(async () => {
  abort.abort();
  await receiving?.catch(() => undefined);
  await cluster?.stop();
});

/** Inserts rows 1, 2, 3, … into `ledger` on whoever is the primary; remembers what committed. */
class Workload {
  readonly committed = new Set<number>();
  private next = 1;
  private stopped = false;
  private loop: Promise<void> | undefined;

  start(): void {
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let client: pg.Client | undefined;
      try {
        const leader = await cluster.leader(90_000);
        client = new pg.Client({ connectionString: leader.url(), connectionTimeoutMillis: 3000 });
        client.on('error', () => undefined);
        await client.connect();
        while (!this.stopped) {
          const n = this.next;
          await client.query(
            'INSERT INTO ledger (n, tli) SELECT $1, timeline_id FROM pg_control_checkpoint()',
            [n],
          );
          this.committed.add(n);
          this.next += 1;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      } catch {
        // the primary went away mid-statement: that row may or may not have committed
        this.next += 1;
        await new Promise((resolve) => setTimeout(resolve, 200));
      } finally {
        await client?.end().catch(() => undefined);
      }
    }
  }
}

/** Waits until the receiver made the leader's current WAL position durable, on its timeline. */
async function waitForStream(timeoutMs = 90_000): Promise<{ timeline: number; lsn: bigint }> {
  const [row] = await cluster.query<{ lsn: string; tli: number }>(
    'leader',
    // The timeline from the WAL file name: the checkpoint's lags a fast promotion.
    "SELECT pg_current_wal_lsn()::text AS lsn, ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS tli",
  );
  const target = parseLsn(row!.lsn);
  const deadline = Date.now() + timeoutMs;
  while (flushed.lsn < target || flushed.timeline < row!.tli) {
    if (Date.now() > deadline)
      throw new Error(
        `stream at ${flushed.timeline}/${flushed.lsn}, leader at ${row!.tli}/${row!.lsn}; receiver ${JSON.stringify(receiver.status())}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { timeline: flushed.timeline, lsn: target };
}

/** Rows of `ledger` in a restore of the repository to `target` (started, read, stopped, removed). */
async function restoredRows(target: RestoreTarget, name: string): Promise<number[]> {
  const targetDir = path.join(cluster.workDir, `restore-${name}`);
  const report = await restore({ store, target, targetDir, start: true });
  const leader = await cluster.leader();
  const instance = new LocalInstance({
    binaries: { bindir: '/usr/lib/postgresql/15/bin', major: 15, source: 'system' },
    dataDir: targetDir,
    port: report.port!,
  });
  try {
    const url = leader.url().replace(`:${leader.pgPort}/`, `:${report.port}/`);
    return await withClient(url, async (client) =>
      (await client.query<{ n: number }>('SELECT n FROM ledger ORDER BY n')).rows.map((r) => r.n),
    );
  } finally {
    await instance.stop({ mode: 'immediate' }).catch(() => undefined);
  }
}

async function rowsOnLeader(): Promise<number[]> {
  return (await cluster.query<{ n: number }>('leader', 'SELECT n FROM ledger ORDER BY n')).map((r) => r.n);
}

/** A restore point on the leader, with the rows it covers (the workload paused around it). */
async function restorePoint(workload: Workload, name: string): Promise<number[]> {
  await workload.stop();
  const rows = await rowsOnLeader();
  await cluster.query('leader', 'SELECT pg_create_restore_point($1)', [name]);
  workload.start();
  return rows;
}

test(
  'the WAL stream follows a Patroni switchover and a failover (SIGKILL) with no gap; restores are exact',
  { timeout: 480_000 },
  async () => {
    const workload = new Workload();
    workload.start();
    // The stream starts through the slot Patroni made (permanent `slots:`), then the first backup.
    await waitForStream();
    const { backup } = await takeBackup({ connection, store, slotName: SLOT, compression: 'zstd' });
    assert.equal(backup.timeline, 1);
    const beforeSwitch = await restorePoint(workload, 'before_switch');
    const start = await waitForStream();
    assert.equal(start.timeline, 1);

    // `warden switchover` through Patroni: it waits for the new leader, then for the stream.
    const switched = await switchover({ connection, store });
    assert.notEqual(switched.to, switched.from);
    assert.equal((await cluster.leader()).name, switched.to);
    assert.ok(switched.timeline >= 2 && switched.streamFollowedMs !== undefined);
    const afterSwitch = await waitForStream();
    assert.ok(afterSwitch.timeline >= 2, `stream on timeline ${afterSwitch.timeline} after the switchover`);
    const betweenChanges = await restorePoint(workload, 'after_switch');

    // Both replicas follow the new leader (and so know its timeline's history) before it is
    // killed. A failover within a second of a switchover can otherwise promote a replica that
    // never saw timeline 2 to a second, different "timeline 2" (PostgreSQL picks the next ID
    // from the histories it knows): the members must share an archive (`warden wal get` as
    // restore_command, docs/high-availability.md) for PostgreSQL to avoid that collision.
    await cluster.waitForReplicas(2);

    // Failover: the leader's Patroni and PostgreSQL are SIGKILLed; another member is elected.
    const killed = await cluster.killLeader();
    assert.notEqual(killed.to, killed.killed);
    await cluster.startMember(killed.killed); // it rejoins as a replica (pg_rewind when needed)
    // The new leader may not yet have written past what the stream holds of the old timeline
    // (asynchronous: the stream can be ahead of it): wait for the timeline itself.
    for (let i = 0; i < 900 && flushed.timeline <= afterSwitch.timeline; i += 1)
      await new Promise((resolve) => setTimeout(resolve, 100));
    const afterFailover = await waitForStream();
    assert.ok(
      afterFailover.timeline > afterSwitch.timeline,
      `a new timeline after the failover: ${JSON.stringify({ afterSwitch: afterSwitch.timeline, afterFailover: afterFailover.timeline, switched, killed, receiver: receiver.status() })}`,
    );
    const afterKill = await restorePoint(workload, 'after_failover');

    // Topology as status/info show it: Patroni's leader is the primary, the slot is on every member.
    await cluster.waitForReplicas(2);
    // Patroni copies the permanent slot to a member that rejoined within a few of its loops.
    let topology = await collectTopology(connection, { slot: SLOT });
    for (let i = 0; i < 20 && !topology.members.every((m) => m.reachable && m.hasSlot); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      topology = await collectTopology(connection, { slot: SLOT });
    }
    assert.equal(topology.source, 'patroni');
    assert.equal(topology.primary, (await cluster.leader()).name);
    assert.equal(topology.members.length, 3);
    for (const m of topology.members) assert.ok(m.reachable && m.timeline !== undefined, JSON.stringify(m));
    assert.equal(
      topology.members.find((m) => m.role === 'primary')?.hasSlot,
      true,
      'the new primary has the slot',
    );
    // A standby without its copy of the permanent slot (Patroni 3.0 keeps physical ones on the
    // leader only) is named as a note; the slot survives (the new primary above has it).
    const missing = topology.members.filter((m) => m.hasSlot === false).map((m) => m.name);
    const survival = slotSurvival(topology, SLOT);
    assert.equal(survival.ok, true, survival.problems.join('; '));
    for (const name of missing)
      assert.ok(
        survival.notes.some((p) => p.includes(name)),
        name,
      );
    assert.ok(
      topology.members.filter((m) => m.role === 'standby').every((m) => m.replayLagBytes !== undefined),
    );
    assert.deepEqual(topology.patroni?.permanentSlots, [SLOT]);
    assert.equal(slotSurvival(topology, 'not_permanent').ok, false, 'a slot Patroni does not keep is named');

    await workload.stop();
    const final = await waitForStream();
    const survivors = await rowsOnLeader();
    // An asynchronous failover may lose what the killed leader had not sent; what every member
    // had long before the kill (the restore points' rows) must have survived it.
    for (const n of [...betweenChanges, ...afterKill]) assert.ok(survivors.includes(n), `row ${n} survived`);
    assert.ok(
      beforeSwitch.length < betweenChanges.length && betweenChanges.length < afterKill.length,
      'the workload wrote through both changes',
    );

    // The receiver announced each timeline it moved to.
    assert.deepEqual(
      timelineChanges.map((e) => [e.from, e.to]),
      [
        [1, afterSwitch.timeline],
        [afterSwitch.timeline, final.timeline],
      ],
    );
    assert.equal(timelineChanges[0]!.cluster, 'ha');

    const report = await verifyRepository({ store });
    assert.deepEqual(
      report.problems.map((p) => `${p.kind} ${p.object}: ${p.message}`),
      [],
      'verify finds no gap and no damage',
    );

    assert.deepEqual(
      await restoredRows({ kind: 'latest' }, 'latest'),
      survivors,
      'latest = the surviving timeline',
    );
    assert.deepEqual(await restoredRows({ kind: 'name', name: 'before_switch' }, 'before'), beforeSwitch);
    assert.deepEqual(await restoredRows({ kind: 'name', name: 'after_switch' }, 'between'), betweenChanges);
    assert.deepEqual(await restoredRows({ kind: 'name', name: 'after_failover' }, 'after'), afterKill);
  },
);
