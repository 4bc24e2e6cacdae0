import assert from 'node:assert/strict';
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { checkLedger, createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { SigningKey } from '../../src/pipeline/signing/signing-keys.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { serverRunAs } from '../../src/postgres/os-user.ts';
import { findServerBinaries } from '../../src/postgres/server-binaries.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { resolveRepositoryGroup } from '../../src/repository/fs/repository-group.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { WARDEN_BIN } from '../harness/cli.ts';
import { startPatroniCluster, type PatroniCluster } from '../harness/patroni-cluster.ts';
import { withClient } from '../harness/postgres.ts';
import { tempDir } from '../harness/temp-dir.ts';

// Patroni builds members from Warden's repository (docs/patroni-replicas.md): a replica through
// `create_replica_methods`, a new cluster through a custom `bootstrap.method` restoring a point
// in time. Patroni runs the commands as PostgreSQL's OS user, which reads the repository through
// its group (repository.group = postgres).
const runAs = serverRunAs();
const signingKey = SigningKey.generate();
let repoDir: string;
let store: FsObjectStore;
let cluster: PatroniCluster;
let receiver: { abort: AbortController; running: Promise<void> };
const commits: Array<{ id: number; before: number; after: number }> = [];

const warden = (args: string) =>
  `${process.execPath} ${WARDEN_BIN} ${args} --repo ${repoDir} --trust-key ${signingKey.id}`;

before(async () => {
  const base = await tempDir('patroni-repo');
  await chmod(base, 0o755);
  repoDir = path.join(base, 'repo');
  await mkdir(repoDir, { mode: 0o750 });
  const group = runAs ? resolveRepositoryGroup(runAs.user, 'test') : undefined;
  if (group) await chown(repoDir, 0, group.gid);
  store = new FsObjectStore(repoDir, group ? { group } : {});
  cluster = await startPatroniCluster({
    members: 3,
    startMembers: 2,
    // Warden's own slot, created by its stream; Patroni leaves it alone (adopting a permanent
    // slot across failovers is high-availability.md's subject, not this test's).
    dcs: { ignore_slots: [{ name: 'warden', type: 'physical' }] },
    memberConfig: ({ name, dataDir }) =>
      name === 'node3'
        ? {
            postgresql: {
              create_replica_methods: ['warden', 'basebackup'],
              warden: { command: warden(`restore --standby --target-dir ${dataDir}`), no_params: true },
            },
          }
        : {},
  });
  const leader = await cluster.leader();
  const connection = { ...connectionFromUrl(leader.url()), tls: 'disable' as const };
  await withClient(leader.url(), (client) => createLedger(client));
  const abort = new AbortController();
  let flushed = 0n;
  const stream = new WalReceiver({
    connection,
    store,
    slotName: 'warden',
    keys: { signingKey },
    signal: abort.signal,
    onFlush: (lsn) => (flushed = lsn),
  });
  receiver = { abort, running: stream.run() };
  receiver.running.catch(() => undefined);
  await takeBackup({ connection, store, slotName: 'warden', compression: 'zstd', keys: { signingKey } });
  await withClient(leader.url(), async (client) => {
    for (let i = 0; i < 10; i += 1) {
      const before = Date.now();
      commits.push({ id: (await randomTransfer(client)).id, before, after: Date.now() });
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    await client.query('SELECT pg_switch_wal()');
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    const deadline = Date.now() + 60_000;
    while (flushed < parseLsn(rows[0]!.lsn) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 100));
  });
});

after(async () => {
  receiver?.abort.abort();
  await receiver?.running.catch(() => undefined);
  await cluster?.stop();
});

test('Patroni creates a replica through Warden (create_replica_methods) and it streams from the leader', async () => {
  await cluster.startMember('node3');
  await cluster.waitForReplicas(2, 180_000);
  const node3 = cluster.member('node3');
  assert.match(node3.logTail(), /replica has been created using warden/);
  const leader = await cluster.leader();
  const done = await withClient(leader.url(), (client) => randomTransfer(client));
  const deadline = Date.now() + 60_000;
  let transfers: number[] = [];
  while (Date.now() < deadline) {
    transfers = await withClient(node3.url(), async (client) => (await checkLedger(client)).transfers).catch(
      () => transfers,
    );
    if (transfers.includes(done.id)) break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.deepEqual(transfers, [...commits.map((c) => c.id), done.id]);
});

test('a new Patroni cluster bootstraps from the repository to a point in time (bootstrap.method)', async () => {
  const index = 6;
  const time = new Date(Math.floor((commits[index]!.after + commits[index + 1]!.before) / 2));
  // Patroni owns the configuration: what the restore appended to postgresql.auto.conf (recovery
  // target, restore_command = 'false', its port) goes once the new cluster is promoted.
  const resetScript = path.join(path.dirname(repoDir), 'reset-auto-conf.sh');
  const psql = path.join((await findServerBinaries(process.env, { major: 15 })).bindir, 'psql');
  await writeFile(
    resetScript,
    `#!/bin/sh\nexec ${psql} "$1" -v ON_ERROR_STOP=1 -c 'ALTER SYSTEM RESET ALL'\n`,
    {
      mode: 0o755,
    },
  );
  const restored = await startPatroniCluster({
    members: 1,
    memberConfig: ({ dataDir }) => ({
      bootstrap: {
        method: 'warden',
        warden: {
          command: warden(`restore --to-time ${time.toISOString()} --target-dir ${dataDir}`),
          no_params: true,
          keep_existing_recovery_conf: true,
        },
        post_bootstrap: resetScript,
      },
    }),
  });
  try {
    const leader = await restored.leader(180_000);
    // The source's system identifier: restored by the bootstrap method, not made by initdb.
    const sysid = 'SELECT system_identifier::text AS id FROM pg_control_system()';
    const [source] = await cluster.query<{ id: string }>('leader', sysid);
    const [copy] = await withClient(
      leader.url(),
      async (client) => (await client.query<{ id: string }>(sysid)).rows,
    );
    assert.equal(copy?.id, source?.id);
    const ledger = await withClient(leader.url(), (client) => checkLedger(client));
    assert.deepEqual(
      ledger.transfers,
      commits.slice(0, index + 1).map((c) => c.id),
    );
    assert.ok(ledger.balanced && ledger.consistent);
    const [target] = await withClient(
      leader.url(),
      async (client) =>
        (await client.query<{ t: string }>("SELECT current_setting('recovery_target_time') AS t")).rows,
    );
    assert.equal(target?.t, '', "the restore's recovery target is gone from the running configuration");
  } finally {
    await restored.stop();
  }
});
