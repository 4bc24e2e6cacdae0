import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import type { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { formatInZone } from '../../src/restore/target-time.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { sleep } from '../faults/helpers.ts';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { streamInto, type StreamingRepository } from '../harness/streaming.ts';

/**
 * `warden restore` says exactly what it restores to and what it reached (issue 12, item 3), and
 * a restore as root works into new directories, or is refused before anything is written, with
 * hints that never name a file the cleanup removed (item 6).
 */
let cluster: TestCluster;
let stream: StreamingRepository<FsObjectStore>;
const isRoot = process.getuid?.() === 0;

before(async () => {
  cluster = await startCluster();
  await withClient(cluster.url(), (client) => createLedger(client));
  stream = streamInto(cluster);
  await takeBackup({
    connection: stream.connection,
    store: stream.store,
    slotName: 'warden',
    compression: 'zstd',
  });
});
after(async () => {
  await stream?.stop();
  await cluster?.stop();
});

const repo = () => path.join(cluster.workDir, 'repo');

function restoreCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  return runWarden(['restore', '--repo', repo(), '--allow-unsigned', ...args], { cwd: cluster.workDir, env });
}

async function stopRestored(dataDir: string, port: number): Promise<void> {
  await new LocalInstance({ binaries: cluster.instance.binaries, dataDir, port }).stop({ mode: 'immediate' });
}

async function transfersIn(port: number): Promise<number[]> {
  const url = cluster.url().replace(`:${cluster.port}/`, `:${port}/`);
  return withClient(url, async (client) =>
    (await client.query<{ id: number }>('SELECT id FROM ledger_transfers ORDER BY id')).rows.map((r) =>
      Number(r.id),
    ),
  );
}

test('a --to-time without a zone is refused with the fix, and nothing is written', async () => {
  const target = path.join(cluster.workDir, 'zoneless');
  const run = await restoreCli(['--to-time', '2026-12-05 15:02:00', '--target-dir', target, '--json'], {
    TZ: 'America/New_York',
  });
  assert.equal(run.code, 2, run.stdout + run.stderr);
  const error = (
    JSON.parse(run.stdout) as { error: { code: string; hint: string; details: Record<string, unknown> } }
  ).error;
  assert.equal(error.code, 'WARDEN_E_USAGE');
  assert.equal(error.details.localTimeZone, 'America/New_York');
  assert.match(error.hint, /--timezone America\/New_York/);
  assert.equal(existsSync(target), false);
});

test(
  '--to-time with --timezone: the target resolved in UTC and in the zone, and what recovery reached',
  { timeout: 180_000 },
  async () => {
    const before = await withClient(cluster.url(), (client) => randomTransfer(client));
    await sleep(1_200);
    const at = new Date(Math.floor(Date.now() / 1000) * 1000);
    await sleep(1_200);
    const later = await withClient(cluster.url(), (client) => randomTransfer(client));
    await stream.waitForArchive();
    const zone = 'America/New_York';
    // The same instant as New York's wall clock shows it, without an offset: --timezone says where.
    const wall = formatInZone(at, zone).slice(0, 19);

    const targetDir = path.join(cluster.workDir, 'tz-json');
    const run = await restoreCli([
      '--to-time',
      wall,
      '--timezone',
      zone,
      '--target-dir',
      targetDir,
      '--start',
      '--json',
    ]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const report = JSON.parse(run.stdout) as {
      port: number;
      resolvedTarget: { kind: string; utc: string; timeZone: string; inZone: string };
      recovered: { lsn: string; timeline: number; lastCommitTime: string; lastCommitLsn: string };
      connect: string;
      stop: string;
    };
    try {
      assert.deepEqual(report.resolvedTarget, {
        kind: 'time',
        utc: at.toISOString(),
        timeZone: zone,
        inZone: formatInZone(at, zone),
      });
      const transfers = await transfersIn(report.port);
      assert.ok(
        transfers.includes(before.id) && !transfers.includes(later.id),
        `restored ${transfers.join(',')}`,
      );
      // What it reached: the last commit replayed lies before the target, and its record before
      // the end of replay; the new timeline's switchpoint is the end of replay.
      const commit = Date.parse(report.recovered.lastCommitTime);
      assert.ok(commit <= at.getTime() && commit > at.getTime() - 5_000, report.recovered.lastCommitTime);
      assert.ok(parseLsn(report.recovered.lastCommitLsn) < parseLsn(report.recovered.lsn));
      assert.ok(report.recovered.timeline >= 2);
      const [row] = await withClient(
        cluster.url().replace(`:${cluster.port}/`, `:${report.port}/`),
        async (client) =>
          (await client.query<{ tli: number }>('SELECT timeline_id AS tli FROM pg_control_checkpoint()'))
            .rows,
      );
      assert.equal(Number(row!.tli), report.recovered.timeline);
      assert.match(report.connect, new RegExp(`port=${report.port} `));
      if (isRoot) assert.match(report.stop, /^su postgres /);
      // The stop line works as printed.
      await promisify(execFile)('/bin/sh', ['-c', report.stop]);
      assert.equal(
        existsSync(path.join(targetDir, 'postmaster.pid')),
        false,
        'stopped by the printed command',
      );
    } finally {
      await stopRestored(targetDir, report.port);
    }

    // The human output says the same before and after the work.
    const humanDir = path.join(cluster.workDir, 'tz-human');
    const human = await restoreCli([
      '--to-time',
      wall,
      '--timezone',
      zone,
      '--target-dir',
      humanDir,
      '--start',
    ]);
    assert.equal(human.code, 0, human.stdout + human.stderr);
    try {
      const lines = human.stdout.split('\n');
      assert.equal(lines[0], `restoring to ${at.toISOString()} (UTC) = ${formatInZone(at, zone)}`);
      assert.match(
        human.stdout,
        /^recovered to: LSN [0-9A-F]+\/[0-9A-F]+ \(end of replay; timeline \d+ starts there\), last commit \d{4}-\S+Z \(LSN [0-9A-F]+\/[0-9A-F]+\)/m,
      );
      assert.match(human.stdout, /^connect: psql "host=127\.0\.0\.1 port=\d+ /m);
      assert.match(human.stdout, /^stop it: +\S/m);
    } finally {
      const port = Number(/127\.0\.0\.1:(\d+)/.exec(human.stdout)?.[1]);
      await stopRestored(humanDir, port);
    }
  },
);

test(
  'as root, missing parent directories are created so the server user can reach the target',
  { skip: !isRoot && 'needs root', timeout: 120_000 },
  async () => {
    const targetDir = path.join(cluster.workDir, 'new-a', 'new-b', 'target');
    const run = await restoreCli(['--latest', '--target-dir', targetDir, '--start', '--json']);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const { port } = JSON.parse(run.stdout) as { port: number };
    try {
      for (const dir of [path.join(cluster.workDir, 'new-a'), path.join(cluster.workDir, 'new-a', 'new-b')]) {
        const info = await stat(dir);
        assert.equal(info.mode & 0o777, 0o711, dir);
      }
      assert.ok((await transfersIn(port)).length > 0);
    } finally {
      await stopRestored(targetDir, port);
    }
  },
);

test(
  'as root, a target under a directory the server user cannot enter is refused before anything is written',
  { skip: !isRoot && 'needs root' },
  async () => {
    const closed = await mkdtemp(path.join(os.tmpdir(), 'warden-closed-'));
    try {
      await chmod(closed, 0o700);
      const targetDir = path.join(closed, 'missing', 'target');
      const run = await restoreCli(['--latest', '--target-dir', targetDir, '--start', '--json']);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      const error = (JSON.parse(run.stdout) as { error: { code: string; details: { blockedAt: string } } })
        .error;
      assert.equal(error.code, 'WARDEN_E_TARGET_UNREACHABLE');
      assert.equal(error.details.blockedAt, closed);
      assert.deepEqual(await readdir(closed), [], 'nothing written');
    } finally {
      await rm(closed, { recursive: true, force: true });
    }
  },
);

test(
  'a restored server that fails to start: the hint names no removed file, the log tail is in the error',
  { timeout: 180_000 },
  async () => {
    // A setting the restored copy cannot honour, taken into a backup of its own.
    await cluster.query("ALTER SYSTEM SET shared_preload_libraries = 'warden_no_such_library'");
    try {
      await takeBackup({
        connection: stream.connection,
        store: stream.store,
        slotName: 'warden',
        compression: 'zstd',
      });
    } finally {
      await cluster.query('ALTER SYSTEM RESET shared_preload_libraries');
    }
    const parent = path.join(cluster.workDir, 'failing-parent');
    const targetDir = path.join(parent, 'target');
    const run = await restoreCli(['--latest', '--target-dir', targetDir, '--start', '--json']);
    assert.notEqual(run.code, 0, run.stdout);
    const error = (
      JSON.parse(run.stdout) as { error: { code: string; hint: string; details: { log: string } } }
    ).error;
    assert.equal(error.code, 'WARDEN_E_INSTANCE_START_FAILED');
    assert.match(error.details.log, /warden_no_such_library/);
    assert.equal(existsSync(targetDir), false, 'the target was removed');
    assert.equal(existsSync(parent), false, 'and the parent the restore created');
    assert.ok(!error.hint.includes(targetDir), `the hint names a removed path: ${error.hint}`);
  },
);
