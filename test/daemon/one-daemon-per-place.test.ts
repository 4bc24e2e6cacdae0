import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { startEmbeddedCluster } from '../../src/embedded/embedded-cluster.ts';
import type { EmbeddedState } from '../../src/embedded/embedded-state.ts';
import { isWardenError } from '../../src/errors.ts';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { serverRunAs } from '../../src/postgres/os-user.ts';
import { findServerBinaries } from '../../src/postgres/server-binaries.ts';
import { freePort } from '../../src/util/free-port.ts';
import { processIdentity } from '../../src/util/process-identity.ts';
import { runWarden } from '../harness/cli.ts';
import {
  exitOf,
  killHard,
  sleep,
  SpawnedWardens,
  waitFor,
  type SpawnedWarden,
} from '../harness/spawned-warden.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

/**
 * One daemon per place (issue 12, item 1): a second embedded default in the same state folder,
 * or a second `warden serve` on the same HTTP port, finds the live owner (PID and start time)
 * and exits 2 naming it, touching nothing; a record whose owner is provably dead is taken over.
 */

let workDir: string;
const wardens = new SpawnedWardens();

before(async () => {
  workDir = await mkdtemp(path.join(os.tmpdir(), 'warden-place-'));
  // As root, PostgreSQL runs as another user that must pass through to ./.warden/pgdata.
  await chmod(workDir, 0o711);
});
after(async () => {
  await wardens.killAll();
  await rm(workDir, { recursive: true, force: true });
});

type Running = SpawnedWarden;

/** `warden <args>` as a user runs it, in `cwd`, with its runtime records under workDir. */
function start(args: string[], cwd: string): Running {
  return wardens.spawn(args, { cwd, env: { ...process.env, TMPDIR: workDir } });
}

async function selectOne(connection: EmbeddedState['connection']): Promise<number> {
  const client = new pg.Client({ ...connection, ssl: false, connectionTimeoutMillis: 30_000 });
  await client.connect();
  try {
    return Number((await client.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one);
  } finally {
    await client.end();
  }
}

/** A process that lives until killed, and one that has already exited (its PID now free). */
async function liveAndDeadProcesses(): Promise<{ live: ChildProcess; deadPid: number }> {
  const live = spawn('sleep', ['600'], { stdio: 'ignore' });
  wardens.track(live);
  const dead = spawn('true', [], { stdio: 'ignore' });
  await once(dead, 'exit');
  return { live, deadPid: dead.pid! };
}

test(
  'a second embedded default in the same folder exits 2 naming the live owner; the first and its PostgreSQL carry on',
  { timeout: 300_000 },
  async (t) => {
    const folder = path.join(workDir, 'embedded');
    await import('node:fs/promises').then((fs) => fs.mkdir(folder, { mode: 0o711 }));
    const first = start(['--no-encryption'], folder);
    const record = path.join(folder, '.warden', 'embedded.json');
    await waitFor(
      'the first daemon to run',
      120_000,
      () => /Ctrl-C stops/.test(first.output()) || first.child.exitCode !== null,
    );
    assert.equal(first.child.exitCode, null, first.output());
    const before = JSON.parse(await readFile(record, 'utf8')) as EmbeddedState;
    assert.equal(before.pid, first.child.pid);

    const second = await runWarden(['--no-encryption'], { cwd: folder, env: { TMPDIR: workDir } });
    assert.equal(second.code, 2, second.stdout + second.stderr);
    assert.match(second.stderr, /WARDEN_E_ALREADY_RUNNING/);
    assert.doesNotMatch(second.stdout, /starting/, 'it does not claim to start anything');
    assert.match(
      second.stderr,
      new RegExp(
        `already running \\(pid ${first.child.pid}, since ${before.startedAt.replaceAll('.', '\\.')}\\)`,
      ),
    );

    // Nothing of the first was touched: same record, same server, still answering; still running.
    assert.deepEqual(JSON.parse(await readFile(record, 'utf8')), before);
    assert.equal(await selectOne(before.connection), 1);
    await sleep(1_000);
    assert.equal(first.child.exitCode, null, first.output());

    await t.test(
      'its PostgreSQL stopped from outside ends the first daemon with a clean error, not a stack trace',
      async () => {
        const runAs = serverRunAs();
        const instance = new LocalInstance({
          binaries: await findServerBinaries(),
          dataDir: path.join(folder, '.warden', 'pgdata'),
          port: before.connection!.port,
          runAs,
        });
        await instance.stop({ mode: 'fast' });
        const ended = await exitOf(first, 'the first daemon after its server stopped', 60_000);
        assert.deepEqual(ended, { code: 3, signal: null }, first.output());
        assert.match(first.output(), /WARDEN_E_DB_UNREACHABLE/);
        // Which connection notices first decides the detail (57P01 admin shutdown, or the socket
        // closing): the code and the clean message are what the operator gets either way.
        assert.doesNotMatch(first.output(), /Emitted 'error' event|at .*\.(js|ts):\d+/);
        assert.equal(existsSync(record), false, 'the owner record is released');
      },
    );
  },
);

test(
  'a daemon killed outright is taken over by the next run: its orphaned server stopped, the new one serving',
  { timeout: 300_000 },
  async () => {
    const folder = path.join(workDir, 'killed');
    await import('node:fs/promises').then((fs) => fs.mkdir(folder, { mode: 0o711 }));
    const record = path.join(folder, '.warden', 'embedded.json');
    const dataDir = path.join(folder, '.warden', 'pgdata');
    const stopServer = async (port: number) =>
      new LocalInstance({ binaries: await findServerBinaries(), dataDir, port, runAs: serverRunAs() }).stop({
        mode: 'fast',
      });
    const killed = start(['--no-encryption'], folder);
    await waitFor(
      'the first daemon to run',
      120_000,
      () => /Ctrl-C stops/.test(killed.output()) || killed.child.exitCode !== null,
    );
    const dead = JSON.parse(await readFile(record, 'utf8')) as EmbeddedState;
    assert.equal(killed.child.exitCode, null, killed.output());
    killed.child.kill('SIGKILL');
    await exitOf(killed, 'the first daemon after SIGKILL', 30_000);
    assert.equal(existsSync(record), true, 'SIGKILL left the record');
    assert.equal(await selectOne(dead.connection), 1, 'and its server, orphaned');

    const next = start(['--no-encryption'], folder);
    try {
      await waitFor(
        'the next daemon to run',
        120_000,
        () => /Ctrl-C stops/.test(next.output()) || next.child.exitCode !== null,
      );
      assert.equal(next.child.exitCode, null, next.output());
      const state = JSON.parse(await readFile(record, 'utf8')) as EmbeddedState;
      assert.equal(state.pid, next.child.pid);
      assert.equal(await selectOne(state.connection), 1);
      if (state.connection!.port !== dead.connection!.port)
        await assert.rejects(selectOne(dead.connection), 'the orphan was stopped');
      next.child.kill('SIGINT');
      assert.deepEqual(
        await exitOf(next, 'the next daemon after SIGINT', 60_000),
        { code: 0, signal: null },
        next.output(),
      );
    } finally {
      await killHard(next.child);
      await stopServer(dead.connection!.port);
    }
  },
);

test('a record whose owner still runs refuses the claim and leaves the folder as it was', async () => {
  const root = await mkdtemp(path.join(workDir, 'live-'));
  await chmod(root, 0o711);
  const { live } = await liveAndDeadProcesses();
  try {
    const owner = processIdentity(live.pid!);
    assert.ok(owner, 'the sleeping child can be identified');
    const record = path.join(root, '.warden', 'embedded.json');
    await import('node:fs/promises').then((fs) => fs.mkdir(path.dirname(record), { mode: 0o700 }));
    await writeFile(record, JSON.stringify(owner));
    await assert.rejects(startEmbeddedCluster(path.join(root, '.warden')), (error: unknown) => {
      assert.ok(isWardenError(error, 'WARDEN_E_ALREADY_RUNNING'), String(error));
      assert.equal(error.details.pid, live.pid);
      return true;
    });
    assert.equal(existsSync(path.join(root, '.warden', 'pgdata')), false, 'no cluster created');
    assert.deepEqual(JSON.parse(await readFile(record, 'utf8')), owner);
  } finally {
    await killHard(live);
  }
});

for (const kind of ['whose PID is gone', 'whose PID now belongs to another process'] as const) {
  test(
    `a record of an owner ${kind} is taken over, and the orphaned server stopped`,
    { timeout: 120_000 },
    async () => {
      const root = await mkdtemp(path.join(workDir, 'stale-'));
      await chmod(root, 0o711);
      const baseDir = path.join(root, '.warden');
      const record = path.join(baseDir, 'embedded.json');
      // A first run that was killed (SIGKILL: no cleanup): its server still runs, its record stays.
      const orphan = await startEmbeddedCluster(baseDir);
      const { live, deadPid } = await liveAndDeadProcesses();
      try {
        const stale =
          kind === 'whose PID is gone'
            ? { pid: deadPid, startTicks: 1, startedAt: '2026-01-01T00:00:00.000Z' }
            : { ...processIdentity(live.pid!)!, startTicks: processIdentity(live.pid!)!.startTicks! + 1 };
        await writeFile(record, JSON.stringify({ ...stale, connection: orphan.connection }));
        const cluster = await startEmbeddedCluster(baseDir);
        try {
          const state = JSON.parse(await readFile(record, 'utf8')) as EmbeddedState;
          assert.equal(state.pid, process.pid);
          assert.equal(state.startTicks, processIdentity(process.pid)!.startTicks);
          assert.equal(state.connection?.port, cluster.connection.port);
          assert.notEqual(cluster.connection.port, orphan.connection.port);
          assert.equal(await selectOne(cluster.connection), 1);
          await assert.rejects(selectOne(orphan.connection), 'the orphaned server was stopped');
        } finally {
          await cluster.stop();
        }
        assert.equal(existsSync(record), false);
      } finally {
        await killHard(live);
        await orphan.instance.stop();
      }
    },
  );
}

test(
  'a second `warden serve` on the same HTTP port exits 2 naming the live owner; the first keeps serving',
  { timeout: 300_000 },
  async () => {
    let cluster: TestCluster | undefined;
    try {
      cluster = await startCluster();
      const configFile = path.join(cluster.workDir, 'warden.yaml');
      await writeFile(
        configFile,
        [
          'daemon:',
          '  profile: dev',
          '  schedules:',
          '    full-backup: null',
          '    backup: null',
          '    logical-dump: null',
          '    retention: null',
          '    verification: null',
          '    drill: null',
          '',
        ].join('\n'),
      );
      const port = await freePort();
      const args = (repo: string) => [
        'serve',
        '--config',
        configFile,
        '--db',
        `${cluster!.url()}?sslmode=disable`,
        '--repo',
        path.join(cluster!.workDir, repo),
        '--no-encryption',
        '--http-port',
        String(port),
      ];
      const first = start(args('repo'), cluster.workDir);
      await waitFor(
        'the first daemon to serve',
        120_000,
        () => /status: http/.test(first.output()) || first.child.exitCode !== null,
      );
      assert.equal(first.child.exitCode, null, first.output());

      // Even for another repository: the port is the place.
      const second = await runWarden(args('other-repo'), { cwd: cluster.workDir, env: { TMPDIR: workDir } });
      assert.equal(second.code, 2, second.stdout + second.stderr);
      assert.match(second.stderr, /WARDEN_E_ALREADY_RUNNING/);
      assert.match(
        second.stderr,
        new RegExp(`port ${port} is already running \\(pid ${first.child.pid}, since \\d{4}-`),
      );
      assert.equal(
        existsSync(path.join(cluster.workDir, 'other-repo', 'warden-repo.json')),
        false,
        'nothing started',
      );

      // A port another program holds is that, not another Warden.
      const other = net.createServer();
      await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
      try {
        const taken = String((other.address() as net.AddressInfo).port);
        const third = await runWarden([...args('third-repo').slice(0, -1), taken, '--json'], {
          cwd: cluster.workDir,
          env: { TMPDIR: workDir },
        });
        assert.equal(third.code, 6, third.stdout + third.stderr);
        assert.equal(
          (JSON.parse(third.stdout) as { error: { code: string } }).error.code,
          'WARDEN_E_PORT_IN_USE',
        );
      } finally {
        await new Promise((resolve) => other.close(resolve));
      }

      const response = await fetch(`http://127.0.0.1:${port}/api/status`);
      assert.equal(response.status, 200);
      assert.equal(first.child.exitCode, null);
      first.child.kill('SIGINT');
      assert.deepEqual(
        await exitOf(first, 'the first daemon after SIGINT', 60_000),
        { code: 0, signal: null },
        first.output(),
      );
      assert.equal(
        existsSync(path.join(workDir, `warden-${process.getuid!()}`, `serve-http-${port}.json`)),
        false,
        'record released',
      );
    } finally {
      await cluster?.stop();
    }
  },
);
