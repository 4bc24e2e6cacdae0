import assert from 'node:assert/strict';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { X25519Identity } from '../../src/pipeline/encryption/age-keys.ts';
import type { RepositoryKeys } from '../../src/pipeline/encryption/repository-keys.ts';
import { ObjectSink } from '../../src/pipeline/object-sink.ts';
import { SigningKey } from '../../src/pipeline/signing/signing-keys.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { takeRedisBackup } from '../../src/redis-backup/redis-backup.ts';
import { commitRedisBackup, listRedisBackups } from '../../src/redis-backup/redis-catalog.ts';
import { loadRedisBackup } from '../../src/redis-backup/redis-load.ts';
import { openRepositoryForRedis } from '../../src/redis-backup/redis-repository.ts';
import { restoreRedisToDir } from '../../src/redis-backup/redis-restore-dir.ts';
import { writeShardRdb } from '../../src/redis-backup/rdb-file.ts';
import { startTempRedisServer } from '../../src/redis-backup/temp-redis-server.ts';
import { verifyRepository } from '../../src/verify/repository-verify.ts';
import { resolveDaemonPlan, type DaemonSection } from '../../src/daemon/daemon-config.ts';
import { redisBackupJobs } from '../../src/daemon/redis-backup-jobs.ts';
import type { WardenError } from '../../src/errors.ts';
import { silentLogger } from '../../src/logger.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';
import { flipByte, rejectsWithCode } from '../faults/helpers.ts';
import { runWarden } from '../harness/cli.ts';
import { startRedis, type TestRedis } from '../harness/redis.ts';
import { startTcpProxy } from '../harness/tcp-proxy.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { loopback, seedKeys, snapshotKeys } from './redis-fixtures.ts';
import { RespConnection } from '../../src/redis-backup/resp-connection.ts';

let redis: TestRedis;
let work: string;
const identity = X25519Identity.generate();
const signer = SigningKey.generate();
const writeKeys: RepositoryKeys = { recipients: [identity.recipient], signingKey: signer };
const readKeys: RepositoryKeys = {
  identities: [identity],
  trust: { keys: new Map([[signer.publicKey.id, signer.publicKey]]) },
};
let n = 0;
const newStore = () => new FsObjectStore(path.join(work, `repo-${(n += 1)}`));

before(async () => {
  redis = await startRedis();
  work = await tempDir('redis-backup');
  await seedKeys([redis.port], 600);
  const db1 = await RespConnection.open(loopback(redis.port));
  await db1.command('SELECT', 1);
  await db1.command('SET', 'in-db-1', 'yes');
  db1.close();
});
after(async () => {
  await redis?.stop();
});

test('a standalone backup restores into a directory that redis-server serves with every key and TTL', async () => {
  const store = newStore();
  const before0 = await snapshotKeys(redis.port, 0);
  const { backup } = await takeRedisBackup({ endpoint: loopback(redis.port), store, keys: writeKeys });
  assert.equal(backup.topology, 'standalone');
  assert.equal(backup.shards.length, 1);
  assert.ok(backup.shards[0]!.object.encryption, 'the RDB is stored encrypted');
  assert.deepEqual(
    (await listRedisBackups(await openRepositoryForRedis(store))).map((b) => b.id),
    [backup.id],
  );

  const dir = path.join(work, `restored-${backup.id}`);
  const report = await restoreRedisToDir({ store, keys: readKeys, backupId: backup.id, targetDir: dir });
  assert.deepEqual(await readdir(dir), ['dump.rdb']);
  assert.deepEqual(report.files, [path.join(dir, 'dump.rdb')]);
  const server = await startTempRedisServer(dir);
  try {
    const after0 = await snapshotKeys(server.port, 0);
    assert.equal(after0.size, before0.size);
    assert.equal(before0.size, 600);
    for (const [key, original] of before0) {
      const restored = after0.get(key);
      assert.ok(restored, `${key} is back`);
      assert.equal(restored.type, original.type);
      assert.equal(restored.value, original.value, `${key} has its value`);
      if (original.pttl === -1) assert.equal(restored.pttl, -1, `${key} stays persistent`);
      else assert.ok(restored.pttl > 0 && restored.pttl <= original.pttl, `${key} keeps its TTL`);
    }
    assert.equal((await snapshotKeys(server.port, 1)).get('in-db-1')?.type, 'string');
  } finally {
    await server.stop();
  }
  await rejectsWithCode(
    restoreRedisToDir({ store, keys: readKeys, backupId: backup.id, targetDir: dir }),
    'WARDEN_E_TARGET_NOT_EMPTY',
  );
  await rejectsWithCode(
    restoreRedisToDir({ store, keys: readKeys, backupId: '../../etc', targetDir: path.join(work, 'x') }),
    'WARDEN_E_REDIS_BACKUP_NOT_FOUND',
  );
});

test('restore --to loads every key into an empty server and refuses a non-empty one, untouched', async () => {
  const store = newStore();
  const { backup } = await takeRedisBackup({ endpoint: loopback(redis.port), store, keys: writeKeys });
  const target = await startRedis();
  try {
    const busy = await RespConnection.open(loopback(target.port));
    await busy.command('SELECT', 3);
    await busy.command('SET', 'someone-elses', 'data');
    await rejectsWithCode(
      loadRedisBackup({ store, keys: readKeys, backupId: backup.id, target: loopback(target.port) }),
      'WARDEN_E_REDIS_TARGET_NOT_EMPTY',
    );
    assert.equal((await snapshotKeys(target.port, 0)).size, 0, 'nothing was loaded');
    await busy.command('FLUSHALL');
    busy.close();
    const report = await loadRedisBackup({
      store,
      keys: readKeys,
      backupId: backup.id,
      target: loopback(target.port),
    });
    assert.equal(report.keys, 601);
    const original = await snapshotKeys(redis.port, 0);
    const loaded = await snapshotKeys(target.port, 0);
    assert.deepEqual([...loaded.keys()].sort(), [...original.keys()].sort());
    for (const [key, value] of original) {
      assert.equal(loaded.get(key)!.value, value.value);
      if (value.pttl > 0)
        assert.ok(
          loaded.get(key)!.pttl > 0 && loaded.get(key)!.pttl <= value.pttl + 1000,
          `${key} keeps its TTL`,
        );
      else assert.equal(loaded.get(key)!.pttl, -1);
    }
    assert.equal((await snapshotKeys(target.port, 1)).size, 1);
  } finally {
    await target.stop();
  }
});

test('verify refuses a flipped byte (checksum) and a well-checksummed but invalid RDB (redis-check-rdb)', async () => {
  const store = newStore();
  const { backup } = await takeRedisBackup({ endpoint: loopback(redis.port), store, keys: writeKeys });
  const clean = await verifyRepository({ store, keys: readKeys });
  assert.equal(clean.ok, true, JSON.stringify(clean.problems));
  assert.equal(clean.checked.redisBackups, 1);

  // 1. A stored byte flipped: the SHA-256 no longer matches; restore refuses and writes nothing.
  const object = backup.shards[0]!.object;
  const file = path.join(store.location, object.key);
  await flipByte(file, Math.floor(object.size / 2));
  const damaged = await verifyRepository({ store, keys: readKeys });
  assert.deepEqual(
    damaged.problems.map((p) => [p.kind, p.object]),
    [['corrupt', object.key]],
  );
  const target = path.join(work, `refused-${backup.id}`);
  await rejectsWithCode(
    restoreRedisToDir({ store, keys: readKeys, backupId: backup.id, targetDir: target }),
    'WARDEN_E_REPO_CORRUPT',
  );
  await assert.rejects(readdir(target), { code: 'ENOENT' });
  await flipByte(file, Math.floor(object.size / 2));

  // 2. The RDB itself damaged before it was stored: every checksum and signature holds, Redis refuses it.
  const rdbFile = path.join(work, `rdb-${backup.id}`);
  await writeShardRdb(store, backup, backup.shards[0]!, readKeys, rdbFile);
  const rdb = await readFile(rdbFile);
  const middle = Math.floor(rdb.length / 2);
  rdb[middle] = rdb[middle]! ^ 0xff;
  const sink = new ObjectSink(
    store,
    object.key,
    backup.compression,
    undefined,
    undefined,
    writeKeys.recipients,
  );
  await sink.write(rdb);
  const rewritten = await sink.finish();
  const repository = await openRepositoryForRedis(store, writeKeys);
  await commitRedisBackup(repository, { ...backup, shards: [{ ...backup.shards[0]!, object: rewritten }] });
  const invalid = await verifyRepository({ store, keys: readKeys });
  assert.deepEqual(
    invalid.problems.map((p) => [p.kind, p.object, p.details?.code]),
    [['corrupt', object.key, 'WARDEN_E_RDB_INVALID']],
  );

  // 3. The record edited after signing: refused by its signature.
  const recordFile = path.join(store.location, `redis/${backup.id}/redis.json`);
  const record = JSON.parse(await readFile(recordFile, 'utf8'));
  record.source = 'redis://elsewhere:6379';
  await import('node:fs/promises').then((fs) => fs.writeFile(recordFile, JSON.stringify(record)));
  const forged = await verifyRepository({ store, keys: readKeys });
  assert.deepEqual(
    forged.problems.map((p) => p.kind),
    ['signature'],
  );
  await rejectsWithCode(
    restoreRedisToDir({ store, keys: readKeys, backupId: backup.id, targetDir: path.join(work, 'forged') }),
    'WARDEN_E_SIGNATURE_INVALID',
  );
});

test('a connection cut mid-snapshot fails with WARDEN_E_REDIS_TRUNCATED and leaves nothing in the repository', async () => {
  const store = newStore();
  const proxy = await startTcpProxy({
    host: '127.0.0.1',
    upstream: { host: '127.0.0.1', port: redis.port },
    mode: 'transparent',
    cutAfterBytes: 8000,
  });
  try {
    const error = await rejectsWithCode(
      takeRedisBackup({ endpoint: loopback(proxy.port), store, keys: writeKeys }),
      'WARDEN_E_REDIS_TRUNCATED',
    );
    // Cut inside the snapshot itself, after its length header: a part of it was already stored.
    assert.ok((error.details?.declared as number) > (error.details?.received as number));
    assert.ok((error.details?.received as number) > 0);
  } finally {
    await proxy.close();
  }
  assert.deepEqual(await store.list('redis/', { includeIncomplete: true }), []);
  assert.deepEqual(await listRedisBackups(await openRepositoryForRedis(store)), []);
});

test('an announced snapshot above the limit is refused before any byte is stored', async () => {
  const store = newStore();
  await rejectsWithCode(
    takeRedisBackup({ endpoint: loopback(redis.port), store, keys: writeKeys, maxRdbBytes: 1000 }),
    'WARDEN_E_RDB_TOO_LARGE',
  );
  assert.deepEqual(await store.list('redis/', { includeIncomplete: true }), []);
});

test('CLI: redis backup, list, verify, restore --target-dir and --to, expire; a wrong password is refused by code', async () => {
  const cwd = path.join(work, 'cli');
  await mkdir(path.join(cwd, '.warden'), { recursive: true });
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    runWarden(args, { cwd, env: { WARDEN_REDIS_PASSWORD: '', ...env } });
  const keygen = await run(['repo', 'keygen', '-o', path.join(cwd, '.warden', 'identity.txt')]);
  assert.equal(keygen.code, 0, keygen.stderr);
  const repo = path.join(cwd, 'repo');
  const url = `redis://127.0.0.1:${redis.port}`;
  const ids: string[] = [];
  for (let i = 0; i < 2; i += 1) {
    const made = await run(['redis', 'backup', '--redis', url, '--repo', repo, '--json']);
    assert.equal(made.code, 0, made.stderr);
    ids.push((JSON.parse(made.stdout) as { backup: { id: string } }).backup.id);
  }
  const list = await run(['redis', 'list', '--repo', repo]);
  assert.equal(list.code, 0, list.stderr);
  for (const id of ids) assert.match(list.stdout, new RegExp(id));
  const verified = await run(['verify', '--repo', repo, '--json']);
  assert.equal(verified.code, 0, verified.stdout);
  assert.equal(
    (JSON.parse(verified.stdout) as { checked: { redisBackups: number } }).checked.redisBackups,
    2,
  );

  const dir = path.join(cwd, 'restored');
  const restored = await run(['redis', 'restore', ids[1]!, '--target-dir', dir, '--repo', repo]);
  assert.equal(restored.code, 0, restored.stderr);
  assert.deepEqual(await readdir(dir), ['dump.rdb']);
  const again = await run(['redis', 'restore', ids[1]!, '--target-dir', dir, '--repo', repo, '--json']);
  assert.equal(again.code, 6);
  assert.equal(
    (JSON.parse(again.stdout || again.stderr) as { error: { code: string } }).error.code,
    'WARDEN_E_TARGET_NOT_EMPTY',
  );

  const target = await startRedis();
  try {
    const loaded = await run([
      'redis',
      'restore',
      ids[1]!,
      '--to',
      `redis://127.0.0.1:${target.port}`,
      '--repo',
      repo,
      '--json',
    ]);
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.equal((JSON.parse(loaded.stdout) as { keys: number }).keys, 601);
    const busy = await run([
      'redis',
      'restore',
      ids[1]!,
      '--to',
      `redis://127.0.0.1:${target.port}`,
      '--repo',
      repo,
      '--json',
    ]);
    assert.equal(busy.code, 6);
  } finally {
    await target.stop();
  }

  const expired = await run(['redis', 'expire', '--keep-last', '1', '--repo', repo, '--json']);
  assert.equal(expired.code, 0, expired.stderr);
  assert.deepEqual(JSON.parse(expired.stdout), { dryRun: false, kept: [ids[1]], expired: [ids[0]] });
  assert.deepEqual(await readdir(path.join(repo, 'redis')), [ids[1]]);

  // A server that wants a password: the backup says so by code, and the password never shows.
  const guarded = await RespConnection.open(loopback(redis.port));
  await guarded.command('CONFIG', 'SET', 'requirepass', 'right-secret');
  try {
    const refused = await run(['redis', 'backup', '--redis', url, '--repo', repo, '--json'], {
      WARDEN_REDIS_PASSWORD: 'wrong-secret',
    });
    assert.equal(refused.code, 3);
    assert.equal(
      (JSON.parse(refused.stdout || refused.stderr) as { error: { code: string } }).error.code,
      'WARDEN_E_REDIS_AUTH_FAILED',
    );
    assert.doesNotMatch(refused.stdout + refused.stderr, /wrong-secret/);
    const allowed = await run(['redis', 'backup', '--redis', url, '--repo', repo, '--json'], {
      WARDEN_REDIS_PASSWORD: 'right-secret',
    });
    assert.equal(allowed.code, 0, allowed.stderr);
  } finally {
    await guarded.command('AUTH', 'right-secret');
    await guarded.command('CONFIG', 'SET', 'requirepass', '');
    guarded.close();
  }
});

test('daemon: a configured Redis gets its own scheduled job that backs it up and applies its retention', async () => {
  const section = (url: string, extra: Record<string, unknown> = {}) => ({
    profile: 'dev',
    redisBackups: [{ name: 'sessions', url, schedule: '0 3 * * *', keepLast: 2, ...extra }],
  });
  const resolve = (daemon: unknown) =>
    resolveDaemonPlan({
      section: daemon as DaemonSection,
      baseDir: work,
      defaultCluster: { repository: { path: path.join(work, 'daemon-repo') } },
      retention: DEFAULT_RETENTION_POLICY,
      flags: {},
      env: {},
    });
  const plan = resolve(section(`redis://127.0.0.1:${redis.port}`)).clusters[0]!;
  assert.deepEqual(
    plan.redisBackups?.map((r) => [r.name, r.schedule.pattern, r.retention.keepLast]),
    [['sessions', '0 3 * * *', 2]],
  );
  assert.throws(
    () => resolve(section('redis://:secret@127.0.0.1:6379')),
    (e: unknown) => (e as WardenError).code === 'WARDEN_E_CONFIG_INVALID',
  );
  assert.throws(
    () => resolve(section('http://127.0.0.1')),
    (e: unknown) => (e as WardenError).code === 'WARDEN_E_USAGE',
  );

  const store = newStore();
  const jobs = redisBackupJobs({ plan, store, compression: 'zstd', keys: writeKeys, logger: silentLogger });
  assert.deepEqual(
    jobs.map((j) => j.name),
    ['redis-backup-sessions'],
  );
  const details: string[] = [];
  for (let i = 0; i < 3; i += 1) {
    const outcome = await jobs[0]!.run({ slot: new Date(), signal: new AbortController().signal });
    assert.equal(outcome.status, 'succeeded');
    details.push(outcome.detail ?? '');
  }
  const kept = await listRedisBackups(await openRepositoryForRedis(store));
  assert.equal(kept.length, 2);
  assert.ok(kept.every((b) => b.name === 'sessions'));
  assert.match(details[2]!, /expired \d{8}-\d{6}R/);
});
