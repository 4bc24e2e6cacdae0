import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isWardenError, type ErrorCode, type WardenError } from '../../src/errors.ts';
import { connectionFromUrl, type ConnectionConfig } from '../../src/postgres/connection-config.ts';
import type { TestCluster } from '../harness/postgres.ts';
import { takeBackup, type BackupReport } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import type { ObjectStore } from '../../src/repository/object-store.ts';
import { parseLsn } from '../../src/wal/lsn.ts';

/** The harness clusters run without TLS on loopback. */
export function connectionOf(
  cluster: TestCluster,
  options: { user?: string; password?: string } = {},
): ConnectionConfig {
  return { ...connectionFromUrl(cluster.url(options)), tls: 'disable' };
}

/** Awaits a promise that must reject with a WardenError of `code`; returns the error. */
export async function rejectsWithCode(promise: Promise<unknown>, code: ErrorCode): Promise<WardenError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isWardenError(error), `expected a WardenError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  assert.fail(`expected a rejection with ${code}`);
}

/** Every file below `dir` (relative path → SHA-256), to show a directory was left untouched. */
export async function snapshotTree(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  if (!existsSync(dir)) return files;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath ?? entry.path, entry.name);
    files[path.relative(dir, full)] = createHash('sha256')
      .update(await readFile(full))
      .digest('hex');
  }
  return files;
}

export { withClient } from '../harness/postgres.ts';

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Flips every bit of the byte at `offset` of a file (in place). */
export async function flipByte(file: string, offset: number): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    byte[0] = byte[0]! ^ 0xff;
    await handle.write(byte, 0, 1, offset);
  } finally {
    await handle.close();
  }
}

/** A Warden child process (`node --import tsx <fixture> <json>`), killed by PID in `after`. */
export function spawnFixture(fixture: string, args: unknown): ChildProcess {
  const file = fileURLToPath(new URL(`./fixtures/${fixture}`, import.meta.url));
  return spawn(process.execPath, ['--import', 'tsx', file, JSON.stringify(args)], {
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** SIGKILLs a child and waits until it is reaped (a zombie would still look alive to kill(pid, 0)). */
export async function killHard(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** Bytes written so far below `dir` (finished objects and unfinished temp files). */
export async function bytesUnder(dir: string): Promise<number> {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile())
      total += await stat(path.join(entry.parentPath ?? entry.path, entry.name)).then(
        (s) => s.size,
        () => 0,
      );
  }
  return total;
}

/**
 * The fixture both corruption tests start from: table `t` with `rows` rows, a zstd base backup,
 * then WAL over several segments (three inserts, each followed by a segment switch, and a last
 * row) streamed into the repository, so a restore to latest needs more than one segment.
 */
export async function backupWithWalTail(
  cluster: TestCluster,
  store: ObjectStore,
  rows: number,
): Promise<BackupReport['backup']> {
  await cluster.query(
    `CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, ${rows}) g`,
  );
  const { backup } = await takeBackup({
    connection: connectionOf(cluster),
    store,
    slotName: 'warden',
    compression: 'zstd',
  });
  for (let i = 0; i < 3; i += 1) {
    await cluster.query('INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g');
    await cluster.query('SELECT pg_switch_wal()');
  }
  await cluster.query('INSERT INTO t VALUES (0, $1)', ['last']);
  const [{ lsn }] = (await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')) as [
    { lsn: string },
  ];
  await new WalReceiver({
    connection: connectionOf(cluster),
    store,
    slotName: 'warden',
    stopAtLsn: parseLsn(lsn),
  }).run();
  return backup;
}
