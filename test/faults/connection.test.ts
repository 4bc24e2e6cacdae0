import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { checkReplicationPrerequisites } from '../../src/postgres/preflight.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { freePort } from '../../src/util/free-port.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { connectionOf, rejectsWithCode, snapshotTree } from './helpers.ts';

let cluster: TestCluster;
const appPassword = 'app-secret-1';

before(async () => {
  cluster = await startCluster();
  await cluster.query(`CREATE ROLE app LOGIN PASSWORD '${appPassword}'`);
});
after(async () => {
  await cluster?.stop();
});

test('preflight and backup refuse a role without REPLICATION', async () => {
  const connection = connectionOf(cluster, { user: 'app', password: appPassword });
  await rejectsWithCode(checkReplicationPrerequisites(connection), 'WARDEN_E_ROLE_NOT_REPLICATION');
  const repoDir = path.join(cluster.workDir, 'repo-role');
  await rejectsWithCode(
    takeBackup({ connection, store: new FsObjectStore(repoDir), slotName: 'warden', compression: 'zstd' }),
    'WARDEN_E_ROLE_NOT_REPLICATION',
  );
  assert.equal(existsSync(repoDir), false, 'no repository created');
});

test('the WAL receiver fails at once (no retry loop) for a role without REPLICATION', async () => {
  const repoDir = path.join(cluster.workDir, 'repo-receiver');
  const receiver = new WalReceiver({
    connection: connectionOf(cluster, { user: 'app', password: appPassword }),
    store: new FsObjectStore(repoDir),
    slotName: 'warden',
  });
  await rejectsWithCode(receiver.run(), 'WARDEN_E_ROLE_NOT_REPLICATION');
  assert.equal(receiver.status().lastError?.code, 'WARDEN_E_ROLE_NOT_REPLICATION');
  assert.deepEqual(await snapshotTree(repoDir), {}, 'nothing left in the repository (lock released)');
});

test('a port with nothing listening is reported as unreachable', async () => {
  const port = await freePort();
  const connection = { ...connectionOf(cluster), port };
  await rejectsWithCode(checkReplicationPrerequisites(connection), 'WARDEN_E_DB_UNREACHABLE');
  // With TLS negotiation (prefer) the refusal happens in the SSLRequest probe: same code.
  await rejectsWithCode(
    checkReplicationPrerequisites({ ...connection, tls: 'prefer' }),
    'WARDEN_E_DB_UNREACHABLE',
  );
  await rejectsWithCode(
    takeBackup({
      connection,
      store: new FsObjectStore(path.join(cluster.workDir, 'repo-x')),
      slotName: 'w',
      compression: 'zstd',
    }),
    'WARDEN_E_DB_UNREACHABLE',
  );
});

test('a wrong password is reported as an authentication failure, for SQL and replication connections', async () => {
  const connection = connectionOf(cluster, { password: 'not-the-password' });
  const error = await rejectsWithCode(checkReplicationPrerequisites(connection), 'WARDEN_E_AUTH_FAILED');
  assert.equal(error.details.sqlstate, '28P01');
  const receiver = new WalReceiver({
    connection,
    store: new FsObjectStore(path.join(cluster.workDir, 'repo-pw')),
    slotName: 'w',
  });
  await rejectsWithCode(receiver.run(), 'WARDEN_E_AUTH_FAILED');
});

test('tls: require against a server without ssl is refused before sending credentials', async () => {
  const connection = { ...connectionOf(cluster), tls: 'require' as const };
  await rejectsWithCode(checkReplicationPrerequisites(connection), 'WARDEN_E_TLS_UNAVAILABLE');
  const receiver = new WalReceiver({
    connection,
    store: new FsObjectStore(path.join(cluster.workDir, 'repo-tls')),
    slotName: 'w',
  });
  await rejectsWithCode(receiver.run(), 'WARDEN_E_TLS_UNAVAILABLE');
  // tls: prefer falls back to plaintext when the server does not offer TLS.
  await checkReplicationPrerequisites({ ...connection, tls: 'prefer' });
});
