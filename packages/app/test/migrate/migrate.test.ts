import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { migrate, migrationStatus, splitStatements } from '../../src/migrate/index.ts';
import { isDataLayerError } from '../../src/errors.ts';
import { startCluster, type TestCluster } from '../../../../test/harness/postgres.ts';
import { tempDir } from '../../../../test/harness/temp-dir.ts';
import { freshDatabase } from '../db/helpers.ts';

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster();
});
after(async () => {
  await cluster?.stop();
});

/** A fresh database, a migrations directory with `files`, and sessions on that database. */
async function setup(files: Record<string, string>) {
  const database = await freshDatabase(cluster);
  const dir = await tempDir('migrations');
  for (const [name, sql] of Object.entries(files)) await writeFile(path.join(dir, name), sql);
  const clients: pg.Client[] = [];
  const session = async () => {
    const client = new pg.Client({ connectionString: cluster.url({ database }) });
    await client.connect();
    clients.push(client);
    return client;
  };
  const query = async <T extends pg.QueryResultRow>(sql: string) => {
    const client = await session();
    return (await client.query<T>(sql)).rows;
  };
  return { dir, session, query, close: () => Promise.all(clients.map((c) => c.end())) };
}

const code = (expected: string) => (error: unknown) => isDataLayerError(error) && error.code === expected;

describe('@warden/app/migrate', () => {
  test('applies pending files in order, records them, and a second run has nothing to do', async () => {
    const db = await setup({
      '002_add_note.sql': 'ALTER TABLE accounts ADD COLUMN note text;',
      '001_create_accounts.sql':
        'CREATE TABLE accounts (id int PRIMARY KEY); INSERT INTO accounts VALUES (1), (2);',
    });
    try {
      const first = await migrate({ client: await db.session(), dir: db.dir });
      assert.deepEqual(
        first.appliedNow.map((m) => m.file),
        ['001_create_accounts.sql', '002_add_note.sql'],
      );
      assert.equal(first.current, 2);
      const again = await migrate({ client: await db.session(), dir: db.dir });
      assert.deepEqual(again.appliedNow, []);
      const status = await migrationStatus({ client: await db.session(), dir: db.dir });
      assert.equal(status.current, 2);
      assert.deepEqual(status.pending, []);
      const rows = await db.query<{ version: string; sha256: string }>(
        'SELECT version::text, sha256 FROM warden_schema_history ORDER BY version',
      );
      assert.deepEqual(
        rows.map((r) => r.version),
        ['1', '2'],
      );
      assert.match(rows[0]!.sha256, /^[0-9a-f]{64}$/);
    } finally {
      await db.close();
    }
  });

  test('a dry run applies nothing and creates nothing', async () => {
    const db = await setup({ '001_t.sql': 'CREATE TABLE t (id int);' });
    try {
      const plan = await migrate({ client: await db.session(), dir: db.dir, dryRun: true });
      assert.deepEqual(
        plan.pending.map((f) => f.version),
        [1],
      );
      const found = await db.query<{ t: string | null; h: string | null }>(
        "SELECT to_regclass('t')::text AS t, to_regclass('warden_schema_history')::text AS h",
      );
      assert.deepEqual(found, [{ t: null, h: null }]);
    } finally {
      await db.close();
    }
  });

  test('a changed applied file, a missing one and an out-of-order one are refused', async () => {
    const db = await setup({
      '001_t.sql': 'CREATE TABLE t (id int);',
      '003_u.sql': 'CREATE TABLE u (id int);',
    });
    try {
      await migrate({ client: await db.session(), dir: db.dir });
      await writeFile(path.join(db.dir, '001_t.sql'), 'CREATE TABLE t (id bigint);');
      await assert.rejects(
        migrate({ client: await db.session(), dir: db.dir }),
        code('WARDEN_E_MIGRATION_CHECKSUM'),
      );
      await writeFile(path.join(db.dir, '001_t.sql'), 'CREATE TABLE t (id int);');
      await writeFile(path.join(db.dir, '002_late.sql'), 'CREATE TABLE late (id int);');
      await assert.rejects(
        migrate({ client: await db.session(), dir: db.dir }),
        code('WARDEN_E_MIGRATION_ORDER'),
      );
      const late = await db.query<{ found: string | null }>("SELECT to_regclass('late')::text AS found");
      assert.equal(late[0]!.found, null, 'nothing ran');
    } finally {
      await db.close();
    }
  });

  test('badly named files, duplicate versions and symlinks are refused before anything runs', async () => {
    const db = await setup({ '001_t.sql': 'CREATE TABLE t (id int);' });
    try {
      await writeFile(path.join(db.dir, 'create_u.sql'), 'CREATE TABLE u (id int);');
      await assert.rejects(
        migrate({ client: await db.session(), dir: db.dir }),
        code('WARDEN_E_MIGRATION_INVALID'),
      );
      const other = await tempDir('migrations-dup');
      await writeFile(path.join(other, '1_a.sql'), 'SELECT 1;');
      await writeFile(path.join(other, '001_b.sql'), 'SELECT 1;');
      await assert.rejects(
        migrate({ client: await db.session(), dir: other }),
        code('WARDEN_E_MIGRATION_INVALID'),
      );
      const linked = await tempDir('migrations-link');
      await mkdir(path.join(linked, 'x'));
      await symlink('/etc/hostname', path.join(linked, '001_link.sql'));
      await assert.rejects(
        migrate({ client: await db.session(), dir: linked }),
        code('WARDEN_E_MIGRATION_INVALID'),
      );
    } finally {
      await db.close();
    }
  });

  test('a failing migration leaves nothing of itself; a no-transaction file runs CREATE INDEX CONCURRENTLY', async () => {
    const db = await setup({
      '001_t.sql': 'CREATE TABLE t (id int, body text);',
      '002_bad.sql': "CREATE TABLE half (id int); INSERT INTO t VALUES (1, 'a;b'); SELECT 1/0;",
    });
    try {
      await assert.rejects(
        migrate({ client: await db.session(), dir: db.dir }),
        code('WARDEN_E_MIGRATION_FAILED'),
      );
      const state = await db.query<{ half: string | null; rows: string; version: string }>(
        "SELECT to_regclass('half')::text AS half, (SELECT count(*) FROM t)::text AS rows, (SELECT max(version) FROM warden_schema_history)::text AS version",
      );
      assert.deepEqual(state, [{ half: null, rows: '0', version: '1' }]);
      await writeFile(path.join(db.dir, '002_bad.sql'), 'SELECT 1;');
      await writeFile(
        path.join(db.dir, '003_index.sql'),
        '-- warden:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_body ON t (body);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_id ON t (id);\n',
      );
      const report = await migrate({ client: await db.session(), dir: db.dir });
      assert.deepEqual(
        report.appliedNow.map((m) => m.version),
        [2, 3],
      );
      const indexes = await db.query<{ indexname: string }>(
        "SELECT indexname FROM pg_indexes WHERE tablename = 't' ORDER BY indexname",
      );
      assert.deepEqual(
        indexes.map((i) => i.indexname),
        ['t_body', 't_id'],
      );
    } finally {
      await db.close();
    }
  });

  test('a migration blocked by a lock times out quickly and is retried until it gets through', async () => {
    const db = await setup({
      '001_t.sql': 'CREATE TABLE t (id int);',
      '002_col.sql': 'ALTER TABLE t ADD COLUMN c int;',
    });
    try {
      await migrate({ client: await db.session(), dir: db.dir, dryRun: false }).catch(() => undefined);
      await db.query('SELECT 1');
      // 002 is applied already; add a third that needs the lock.
      await writeFile(path.join(db.dir, '003_col.sql'), 'ALTER TABLE t ADD COLUMN d int;');
      const holder = await db.session();
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
      const running = migrate({ client: await db.session(), dir: db.dir, lockTimeoutMs: 200, attempts: 6 });
      await sleep(1_500);
      await holder.query('COMMIT');
      const report = await running;
      assert.equal(report.appliedNow[0]!.version, 3);
      assert.ok(report.appliedNow[0]!.attempts > 1, `attempts: ${report.appliedNow[0]!.attempts}`);
    } finally {
      await db.close();
    }
  });

  test('two runners at once: each migration is applied once', async () => {
    const db = await setup({
      '001_t.sql': 'CREATE TABLE t (id int); SELECT pg_sleep(1);',
      '002_u.sql': 'CREATE TABLE u (id int);',
    });
    try {
      const [a, b] = await Promise.all([
        migrate({ client: await db.session(), dir: db.dir }),
        migrate({ client: await db.session(), dir: db.dir }),
      ]);
      assert.deepEqual([...a.appliedNow, ...b.appliedNow].map((m) => m.version).sort(), [1, 2]);
    } finally {
      await db.close();
    }
  });

  test('splitStatements splits at semicolons outside quotes, dollar quotes and comments', () => {
    const sql = [
      "INSERT INTO t VALUES ('a;b', E'c\\';d');",
      'CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;',
      '-- a comment; with a semicolon',
      '/* block; /* nested; */ still; */ SELECT "we;ird" FROM x;',
      '  ',
    ].join('\n');
    assert.deepEqual(splitStatements(sql), [
      "INSERT INTO t VALUES ('a;b', E'c\\';d')",
      'CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql',
      '-- a comment; with a semicolon\n/* block; /* nested; */ still; */ SELECT "we;ird" FROM x',
    ]);
  });
});
