import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { stringify as toYaml } from 'yaml';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { resolveDaemonPlan } from '../../src/daemon/daemon-config.ts';
import { buildJobs } from '../../src/daemon/jobs.ts';
import { silentLogger } from '../../src/logger.ts';
import { SigningKey } from '../../src/pipeline/signing/signing-keys.ts';
import { writeSigningKeyFile } from '../../src/pipeline/signing/signing-keyring.ts';
import { connectionFromUrl, type ConnectionConfig } from '../../src/postgres/connection-config.ts';
import { findServerBinaries } from '../../src/postgres/server-binaries.ts';
import type { BackupRecord } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startPatroniCluster, type PatroniCluster } from '../harness/patroni-cluster.ts';
import type { TestCluster } from '../harness/postgres.ts';
import { withClient } from '../harness/postgres.ts';
import { restoredLedger } from '../harness/restored.ts';
import { tempDir } from '../harness/temp-dir.ts';

/**
 * Backups from a standby of a real 3-node Patroni cluster (PostgreSQL 15 + etcd), through the
 * CLI as a user runs it: `--from standby` (the least-behind streaming replica), `--from NAME`,
 * refusals with their codes, the configured default (`cluster.backup.from`, and the daemon's
 * scheduled backups), and `warden check`'s slot check against Patroni's permanent slots. One
 * cluster for the file; the repository's WAL stream runs in this process throughout.
 */
const SLOT = 'warden';
let cluster: PatroniCluster;
let store: FsObjectStore;
let repoDir: string;
let cwd: string;
let connection: ConnectionConfig;
let restoreSource: TestCluster;
const signingKey = SigningKey.generate();
const abort = new AbortController();
let receiving: Promise<void>;
let flushed = 0n;
const committed: number[] = [];

before(async () => {
  // Patroni leaves Warden's slot alone (ignore_slots) but does not keep it: not permanent yet.
  cluster = await startPatroniCluster({
    dcs: { ignore_slots: [{ name: SLOT, type: 'physical' }] },
    parameters: { max_standby_streaming_delay: -1 },
  });
  cwd = await tempDir('standby-backup');
  repoDir = path.join(cwd, 'repo');
  store = new FsObjectStore(repoDir);
  // The CLI signs with the default key file of its working directory: the same key as the stream.
  await mkdir(path.join(cwd, '.warden'), { mode: 0o700 });
  await writeSigningKeyFile(path.join(cwd, '.warden', 'signing-key'), signingKey);
  await writeConfig();
  connection = {
    ...connectionFromUrl(cluster.multiHostUrl()),
    patroni: { urls: cluster.restUrls() },
    tls: 'disable',
  };
  const leader = await cluster.leader();
  await withClient(leader.url(), async (client) => {
    await createLedger(client);
    await client.query('CREATE TABLE lagger (n int)');
    for (let i = 0; i < 3; i += 1) committed.push((await randomTransfer(client)).id);
  });
  receiving = new WalReceiver({
    connection,
    store,
    slotName: SLOT,
    keys: { signingKey },
    signal: abort.signal,
    onFlush: (lsn) => (flushed = lsn),
  }).run();
  receiving.catch(() => undefined);
  await waitForArchive();
  const binaries = await findServerBinaries(process.env, { major: 15 });
  // What restored.ts needs of a cluster: binaries, a work dir the server's OS user may enter, and
  // the superuser URL (its port is swapped for the restored instance's).
  restoreSource = {
    instance: { binaries },
    workDir: cluster.workDir,
    port: leader.pgPort,
    url: () => leader.url(),
  } as unknown as TestCluster;
});

after(async () => {
  abort.abort();
  await receiving?.catch(() => undefined);
  await cluster?.stop();
});

/** warden.yaml in the CLI's working directory: the cluster by its hosts and Patroni, no password. */
async function writeConfig(backup?: { from: string }): Promise<void> {
  const hosts = cluster.members.map((m) => `127.0.0.1:${m.pgPort}`).join(',');
  await writeFile(
    path.join(cwd, 'warden.yaml'),
    toYaml({
      cluster: {
        url: `postgres://postgres@${hosts}/postgres?target_session_attrs=read-write&sslmode=disable`,
        patroni: { urls: cluster.restUrls() },
        slot: SLOT,
        ...(backup ? { backup } : {}),
      },
      repository: { path: repoDir, encryption: { mode: 'none' } },
    }),
    { mode: 0o600 },
  );
}

/** The CLI, its password from the environment (never argv). */
function warden(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return runWarden([...args, '--json'], { cwd, env: { PGPASSWORD: cluster.password, ...env } });
}

function json<T>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`exit ${run.code}, not JSON: ${run.stdout}\n${run.stderr}`);
  }
}

/** A committed backup through the CLI, with its record as stored in the repository. */
/** The last backup's `check standby` step: which member, how far behind (for messages). */
let chosenDetail: string | undefined;

async function backupVia(args: string[], env: Record<string, string> = {}): Promise<BackupRecord> {
  const run = await warden(['backup', ...args], env);
  assert.equal(run.code, 0, `${run.stdout}\n${run.stderr}`);
  const { backup, steps } = json<{ backup: BackupRecord; steps: Array<{ name: string; detail?: string }> }>(
    run,
  );
  chosenDetail = steps.find((step) => step.name === 'check standby')?.detail;
  return JSON.parse((await store.getBuffer(`backups/${backup.id}/backup.json`)).toString()) as BackupRecord;
}

async function errorCode(run: CliRun): Promise<string> {
  return json<{ error: { code: string } }>(run).error.code;
}

/**
 * Waits (bounded) until the stream made the leader's current WAL durable, segment switched, and
 * the switched segment is stored whole: a restore planned while its `.partial` is being replaced
 * would find it gone (a race of restore against a running stream, not this file's subject).
 */
async function waitForArchive(): Promise<void> {
  const [row] = await cluster.query<{ lsn: string; segment: string }>(
    'leader',
    `SELECT pg_walfile_name(pg_current_wal_lsn()) AS segment,
            (SELECT pg_current_wal_lsn() FROM (SELECT pg_switch_wal()) s)::text AS lsn`,
  );
  const target = parseLsn(row!.lsn);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const partial = (await store.list('wal/')).some((key) => key.includes(`${row!.segment}.partial`));
    if (flushed >= target && !partial) return;
    if (Date.now() > deadline)
      throw new Error(
        `stream flushed ${flushed}, not ${target}, or ${row!.segment} still partial after 60 s`,
      );
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits (bounded) until `names` replayed everything the leader wrote so far. */
async function waitForReplay(names: string[]): Promise<void> {
  const [row] = await cluster.query<{ lsn: string }>('leader', 'SELECT pg_current_wal_lsn()::text AS lsn');
  const deadline = Date.now() + 60_000;
  for (const name of names) {
    for (;;) {
      const [replayed] = await cluster.query<{ caught_up: boolean }>(
        name,
        'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught_up',
        [row!.lsn],
      );
      if (replayed?.caught_up) break;
      if (Date.now() > deadline) throw new Error(`${name} did not replay up to ${row!.lsn} within 60 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/**
 * Holds replay back on one replica: a transaction there reads `lagger`, and the leader takes an
 * ACCESS EXCLUSIVE lock on it, which the replica cannot replay while the reader runs
 * (max_standby_streaming_delay = -1: it waits). Its WAL receiver keeps streaming. Returns the
 * release. (Not pg_wal_replay_pause() or recovery_min_apply_delay: Patroni undoes both.)
 */
async function holdReplay(name: string): Promise<() => Promise<void>> {
  const reader = new pg.Client({ connectionString: cluster.member(name).url() });
  reader.on('error', () => undefined);
  await reader.connect();
  await reader.query('BEGIN');
  await reader.query('SELECT count(*) FROM lagger');
  await cluster.query('leader', 'BEGIN; LOCK TABLE lagger IN ACCESS EXCLUSIVE MODE; COMMIT');
  return async () => {
    await reader.query('COMMIT').catch(() => undefined);
    await reader.end().catch(() => undefined);
  };
}

async function replicaNames(): Promise<{ leader: string; replicas: string[] }> {
  const leader = (await cluster.leader()).name;
  return {
    leader,
    replicas: cluster.members
      .map((m) => m.name)
      .filter((n) => n !== leader)
      .sort(),
  };
}

async function slotCheck(): Promise<{ status: string; code?: string; message?: string }> {
  const run = await warden(['check', '--wal-timeout', '60s']);
  const report = json<{ checks: Array<{ name: string; status: string; code?: string; message?: string }> }>(
    run,
  );
  const slot = report.checks.find((c) => c.name === 'slot');
  assert.ok(slot, run.stdout);
  return slot;
}

test('warden check fails its slot check (slot-not-permanent) until the slot is one of Patroni’s permanent slots', async () => {
  const notPermanent = await slotCheck();
  assert.equal(notPermanent.status, 'fail');
  assert.equal(notPermanent.code, 'WARDEN_E_SLOT_NOT_PERMANENT');

  await cluster.patchConfig({ slots: { [SLOT]: { type: 'physical' } } });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const dynamic = (await (await fetch(`${cluster.restUrls()[0]}/config`)).json()) as { slots?: object };
    if (dynamic.slots && SLOT in dynamic.slots) break;
    if (Date.now() > deadline) throw new Error('Patroni did not take the permanent slot');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  // Patroni 3.0 (Debian's) keeps a permanent physical slot on the leader only and creates it on
  // a member at its promotion: the replicas' missing copies are a warning, not a failure.
  const { replicas } = await replicaNames();
  const permanent = await slotCheck();
  assert.equal(permanent.status, 'warn', JSON.stringify(permanent));
  for (const name of replicas)
    assert.match(permanent.message ?? '', new RegExp(`no copy on standby ${name}`));

  // With a copy on every replica (as Patroni 3.2 keeps them) nothing is left to say.
  for (const name of replicas)
    await cluster.query(name, 'SELECT pg_create_physical_replication_slot($1)', [SLOT]);
  const everywhere = await slotCheck();
  assert.equal(everywhere.status, 'ok', JSON.stringify(everywhere));
});

test('--from standby backs up on the least-behind streaming replica, records it, and restores exactly', async () => {
  const { leader, replicas } = await replicaNames();
  const [behind, ahead] = replicas as [string, string];
  // The replica that would win a tie by name stops replaying: it still streams, but lags.
  const release = await holdReplay(behind);
  try {
    await withClient(cluster.member(leader).url(), async (client) => {
      for (let i = 0; i < 3; i += 1) committed.push((await randomTransfer(client)).id);
    });
    await waitForReplay([ahead]);
    const record = await backupVia(['--from', 'standby']);
    assert.equal(record.takenFrom?.role, 'standby');
    assert.equal(record.takenFrom?.member, ahead, chosenDetail);
    assert.equal(record.takenFrom?.port, cluster.member(ahead).pgPort);
    const atBackup = [...committed];

    const later = await withClient(cluster.member(leader).url(), async (client) => [
      (await randomTransfer(client)).id,
      (await randomTransfer(client)).id,
    ]);
    committed.push(...later);
    await waitForArchive();
    const restored = await restoredLedger(restoreSource, store, 'restored-standby-backup', {
      kind: 'backup',
      id: record.id,
    });
    assert.deepEqual(restored.transfers, atBackup, 'the backup holds what the replica had replayed');
    assert.ok(restored.balanced && restored.consistent);
    const latest = await restoredLedger(restoreSource, store, 'restored-standby-latest', { kind: 'latest' });
    assert.deepEqual(latest.transfers, committed);
  } finally {
    await release();
  }
});

test('--from NAME backs up on that Patroni member; an unknown name or the leader is refused with its code', async () => {
  const { leader, replicas } = await replicaNames();
  await waitForReplay(replicas);
  const named = replicas[replicas.length - 1]!;
  const record = await backupVia(['--from', named]);
  assert.deepEqual(
    { role: record.takenFrom?.role, member: record.takenFrom?.member },
    { role: 'standby', member: named },
  );

  const unknown = await warden(['backup', '--from', 'node9']);
  assert.equal(await errorCode(unknown), 'WARDEN_E_MEMBER_UNKNOWN');
  assert.equal(unknown.code, 4);
  const members = json<{ error: { details: { members: Array<{ member: string }> } } }>(unknown).error.details
    .members;
  assert.deepEqual(members.map((m) => m.member).sort(), cluster.members.map((m) => m.name).sort());

  const onLeader = await warden(['backup', '--from', leader]);
  assert.equal(await errorCode(onLeader), 'WARDEN_E_MEMBER_NOT_STANDBY');
  assert.equal(onLeader.code, 6);
});

test('without Patroni, the hosts of a multi-host URL are asked: --from standby lands on a replica named host:port', async () => {
  const { replicas } = await replicaNames();
  await waitForReplay(replicas);
  const hosts = cluster.members.map((m) => `127.0.0.1:${m.pgPort}`).join(',');
  const record = await backupVia([
    '--from',
    'standby',
    '--db',
    `postgres://postgres@${hosts}/postgres?sslmode=disable`,
  ]);
  assert.equal(record.takenFrom?.role, 'standby');
  const replicaHosts = replicas.map((name) => `127.0.0.1:${cluster.member(name).pgPort}`);
  assert.ok(replicaHosts.includes(record.takenFrom?.member ?? ''), JSON.stringify(record.takenFrom));
});

test('without a standby, --from standby is refused and standby-or-primary backs up on the primary, saying why', async () => {
  // The leader alone (no host list, no Patroni): a cluster of one primary.
  const leader = await cluster.leader();
  const db = `postgres://postgres@127.0.0.1:${leader.pgPort}/postgres?sslmode=disable`;
  const refused = await warden(['backup', '--from', 'standby', '--db', db]);
  assert.equal(await errorCode(refused), 'WARDEN_E_NO_STANDBY');
  assert.equal(refused.code, 8);

  const record = await backupVia(['--from', 'standby-or-primary', '--db', db]);
  assert.equal(record.takenFrom?.role, 'primary');
  assert.ok(record.takenFrom?.fallback, 'the record says why the primary was used');
});

test('the configured default (cluster.backup.from) is used by `warden backup` and by the daemon’s scheduled backups', async () => {
  const { replicas } = await replicaNames();
  await waitForReplay(replicas);
  await writeConfig({ from: 'standby' });
  try {
    const record = await backupVia([]);
    assert.equal(record.takenFrom?.role, 'standby');
    // The environment beats the file, and the flag beats both.
    const fromEnv = await warden(['backup'], { WARDEN_BACKUP_FROM: 'node9' });
    assert.equal(await errorCode(fromEnv), 'WARDEN_E_MEMBER_UNKNOWN');
    const fromFlag = await warden(['backup', '--from', 'node8'], { WARDEN_BACKUP_FROM: 'primary' });
    assert.equal(await errorCode(fromFlag), 'WARDEN_E_MEMBER_UNKNOWN');
  } finally {
    await writeConfig();
  }

  // The daemon: a cluster entry's backup.from reaches its scheduled full backup.
  const named = replicas[0]!;
  const plan = resolveDaemonPlan({
    section: { backup: { from: named } },
    baseDir: cwd,
    defaultCluster: { connection, repository: { path: repoDir }, slot: SLOT },
    retention: DEFAULT_RETENTION_POLICY,
    flags: { profile: 'dev' },
    env: {},
  }).clusters[0]!;
  const job = buildJobs({
    plan,
    connection,
    store,
    compression: 'zstd',
    keys: { signingKey },
    logger: silentLogger,
  }).find((j) => j.name === 'full-backup');
  assert.ok(job, 'the dev profile schedules full backups');
  const outcome = await job.run({ slot: new Date(), signal: new AbortController().signal });
  assert.equal(outcome.status, 'succeeded');
  const id = /full backup (\S+)/.exec(outcome.detail ?? '')?.[1];
  assert.ok(id, outcome.detail);
  const record = JSON.parse((await store.getBuffer(`backups/${id}/backup.json`)).toString()) as BackupRecord;
  assert.deepEqual(
    { role: record.takenFrom?.role, member: record.takenFrom?.member },
    { role: 'standby', member: named },
  );
});
