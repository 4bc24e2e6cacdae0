import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeDump } from '../../src/backup/logical-dump.ts';
import { findClientTool } from '../../src/postgres/client-tool.ts';
import { checkLedger, createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { listDumps } from '../../src/repository/dump-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { restoreDump } from '../../src/restore/dump-restore.ts';
import { verifyRepository } from '../../src/verify/repository-verify.ts';
import { connectionOf, flipByte, rejectsWithCode, withClient } from '../faults/helpers.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;
let repoDir: string;
let store: FsObjectStore;

interface Snapshot {
  accounts: number;
  transfers: number;
  balances: string;
  sum: string;
}

async function snapshot(database: string): Promise<Snapshot> {
  return withClient(cluster.url({ database }), async (client) => {
    const { rows } = await client.query<Snapshot>(
      `SELECT (SELECT count(*) FROM ledger_accounts)::int AS accounts,
              (SELECT count(*) FROM ledger_transfers)::int AS transfers,
              (SELECT string_agg(id || ':' || balance, ',' ORDER BY id) FROM ledger_accounts) AS balances,
              (SELECT sum(balance) FROM ledger_accounts)::text AS sum`,
    );
    return rows[0]!;
  });
}

before(async () => {
  cluster = await startCluster();
  repoDir = path.join(cluster.workDir, 'repo');
  store = new FsObjectStore(repoDir);
  await cluster.query('CREATE DATABASE waqiti');
  await withClient(cluster.url({ database: 'waqiti' }), async (client) => {
    await createLedger(client);
    for (let i = 0; i < 200; i += 1) await randomTransfer(client);
  });
});
after(async () => {
  await cluster?.stop();
});

test('a dump of the ledger restores under a new name with the same rows and balances', async () => {
  const { dump } = await takeDump({ connection: connectionOf(cluster), database: 'waqiti', store });
  assert.equal(dump.database, 'waqiti');
  assert.match(dump.id, /^\d{8}-\d{6}D\d*$/);
  assert.match(dump.pgDumpVersion, /^pg_dump \(PostgreSQL\) \d+/);
  assert.ok(dump.object.rawSize > 0 && dump.object.size > 0);
  assert.deepEqual(
    (await listDumps(await Repository.open(store))).map((d) => d.id),
    [dump.id],
  );
  const report = await restoreDump({
    connection: connectionOf(cluster),
    store,
    dumpId: dump.id,
    targetDatabase: 'waqiti_restored',
  });
  assert.equal(report.targetDatabase, 'waqiti_restored');
  const [source, restored] = [await snapshot('waqiti'), await snapshot('waqiti_restored')];
  assert.deepEqual(restored, source);
  assert.equal(restored.transfers, 200);
  assert.equal(restored.sum, '0');
  const check = await withClient(cluster.url({ database: 'waqiti_restored' }), (client) =>
    checkLedger(client),
  );
  assert.equal(check.consistent, true);
  assert.equal((await verifyRepository({ store })).ok, true);
});

test('restore --dump refuses an existing target database and leaves it untouched', async () => {
  const [dump] = await listDumps(await Repository.open(store));
  await cluster.query('CREATE DATABASE occupied');
  await withClient(cluster.url({ database: 'occupied' }), (c) => c.query('CREATE TABLE keep_me (id int)'));
  await rejectsWithCode(
    restoreDump({ connection: connectionOf(cluster), store, dumpId: dump!.id, targetDatabase: 'occupied' }),
    'WARDEN_E_DATABASE_EXISTS',
  );
  const tables = await withClient(
    cluster.url({ database: 'occupied' }),
    async (c) =>
      (await c.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'"))
        .rows[0]!.n,
  );
  assert.equal(tables, 1);
});

test('an unknown dump id is WARDEN_E_DUMP_NOT_FOUND', async () => {
  await rejectsWithCode(
    restoreDump({
      connection: connectionOf(cluster),
      store,
      dumpId: '20000101-000000D',
      targetDatabase: 'x1',
    }),
    'WARDEN_E_DUMP_NOT_FOUND',
  );
});

test('a damaged dump fails the restore naming the object, and the new database is dropped', async () => {
  const [dump] = await listDumps(await Repository.open(store));
  const file = path.join(repoDir, dump!.object.key);
  await flipByte(file, Math.floor(dump!.object.size / 2));
  try {
    const error = await rejectsWithCode(
      restoreDump({
        connection: connectionOf(cluster),
        store,
        dumpId: dump!.id,
        targetDatabase: 'waqiti_bad',
      }),
      'WARDEN_E_REPO_CORRUPT',
    );
    assert.equal(error.details.object, dump!.object.key);
    const left = await cluster.query("SELECT 1 FROM pg_database WHERE datname = 'waqiti_bad'");
    assert.equal(left.length, 0);
    const report = await verifyRepository({ store });
    assert.ok(
      report.problems.some((p) => p.object === dump!.object.key && /dump .* unrestorable/.test(p.breaks)),
    );
  } finally {
    await flipByte(file, Math.floor(dump!.object.size / 2));
  }
});

test('pg_dump missing (WARDEN_PG_BINDIR empty) is WARDEN_E_TOOL_MISSING and nothing is committed', async () => {
  const empty = path.join(cluster.workDir, 'empty-bin');
  await mkdir(empty, { recursive: true });
  const before = (await listDumps(await Repository.open(store))).length;
  const error = await rejectsWithCode(
    takeDump({
      connection: connectionOf(cluster),
      database: 'waqiti',
      store,
      env: { ...process.env, WARDEN_PG_BINDIR: empty },
    }),
    'WARDEN_E_TOOL_MISSING',
  );
  assert.equal(error.details.tool, 'pg_dump');
  await rejectsWithCode(
    restoreDump({
      connection: connectionOf(cluster),
      store,
      dumpId: (await listDumps(await Repository.open(store)))[0]!.id,
      targetDatabase: 'never_made',
      env: { ...process.env, WARDEN_PG_BINDIR: empty },
    }),
    'WARDEN_E_TOOL_MISSING',
  );
  assert.equal((await cluster.query("SELECT 1 FROM pg_database WHERE datname = 'never_made'")).length, 0);
  assert.equal((await listDumps(await Repository.open(store))).length, before);
});

test('pg_dump older than the server is WARDEN_E_TOOL_TOO_OLD', async () => {
  const old = path.join(cluster.workDir, 'old-bin');
  await mkdir(old, { recursive: true });
  // A stand-in for an old client install: only its --version answer matters here.
  await writeFile(path.join(old, 'pg_dump'), '#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n');
  await chmod(path.join(old, 'pg_dump'), 0o755);
  const error = await rejectsWithCode(
    takeDump({
      connection: connectionOf(cluster),
      database: 'waqiti',
      store,
      env: { ...process.env, WARDEN_PG_BINDIR: old },
    }),
    'WARDEN_E_TOOL_TOO_OLD',
  );
  assert.equal(error.details.toolMajor, 9);
});

test('a pg_dump that fails mid-stream commits nothing and leaves no object behind', async () => {
  const failing = path.join(cluster.workDir, 'failing-bin');
  await mkdir(failing, { recursive: true });
  // Writes part of an archive, then dies the way pg_dump does when the connection breaks.
  const real = (await findClientTool('pg_dump')).path;
  await writeFile(
    path.join(failing, 'pg_dump'),
    `#!/bin/sh\nif [ "$1" = "--version" ]; then exec ${real} --version; fi\nhead -c 300000 /dev/urandom\necho "pg_dump: error: connection lost" >&2\nexit 1\n`,
  );
  await chmod(path.join(failing, 'pg_dump'), 0o755);
  const keysBefore = await store.list('dumps/', { includeIncomplete: true });
  const error = await rejectsWithCode(
    takeDump({
      connection: connectionOf(cluster),
      database: 'waqiti',
      store,
      env: { ...process.env, WARDEN_PG_BINDIR: failing },
    }),
    'WARDEN_E_DUMP_FAILED',
  );
  assert.match(String(error.details.stderr), /connection lost/);
  assert.deepEqual(await store.list('dumps/', { includeIncomplete: true }), keysBefore);
});

test('dumping a database that does not exist fails with the server error and commits nothing', async () => {
  const keysBefore = await store.list('dumps/', { includeIncomplete: true });
  await rejectsWithCode(
    takeDump({ connection: connectionOf(cluster), database: 'no_such_db', store }),
    'WARDEN_E_SERVER_ERROR',
  );
  assert.deepEqual(await store.list('dumps/', { includeIncomplete: true }), keysBefore);
});

test('CLI: warden dump, dump list and restore --dump --target-database', async () => {
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        'node',
        [path.resolve('bin/warden.js'), ...args],
        { cwd: cluster.workDir },
        (error, stdout, stderr) =>
          resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  const db = `${cluster.url()}?sslmode=disable`;
  // Encrypted by default: the identity in ./.warden/identity.txt is found by both commands.
  const keygen = await run(['repo', 'keygen', '-o', path.join(cluster.workDir, '.warden', 'identity.txt')]);
  assert.equal(keygen.code, 0, keygen.stderr);
  const made = await run(['dump', '--database', 'waqiti', '--db', db, '--repo', repoDir, '--json']);
  assert.equal(made.code, 0, made.stderr);
  const dumpRecord = (JSON.parse(made.stdout) as { dump: { id: string; object: { encryption?: unknown } } })
    .dump;
  assert.ok(dumpRecord.object.encryption, 'the dump is encrypted');
  const id = dumpRecord.id;
  const list = await run(['dump', 'list', '--repo', repoDir]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, new RegExp(id));
  const restored = await run([
    'restore',
    '--dump',
    id,
    '--target-database',
    'waqiti_cli',
    '--db',
    db,
    '--repo',
    repoDir,
    // The library tests above created this repository unsigned (no signing key); the CLI's own
    // dump is signed, the repository's metadata is not (docs/security.md).
    '--allow-unsigned',
  ]);
  assert.equal(restored.code, 0, restored.stderr);
  assert.deepEqual(await snapshot('waqiti_cli'), await snapshot('waqiti'));
  const again = await run([
    'restore',
    '--dump',
    id,
    '--target-database',
    'waqiti_cli',
    '--db',
    db,
    '--repo',
    repoDir,
    '--allow-unsigned',
    '--json',
  ]);
  assert.equal(again.code, 6);
  assert.equal(
    (JSON.parse(again.stdout) as { error: { code: string } }).error.code,
    'WARDEN_E_DATABASE_EXISTS',
  );
});
