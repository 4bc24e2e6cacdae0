import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { repositoryWalEnd } from '../../src/backup/repository-slot.ts';
import { ReplicationClient } from '../../src/postgres/replication-client.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import type { RepositoryMeta } from '../../src/repository/repository-meta.ts';
import { readWalInventory } from '../../src/repository/wal-archive.ts';
import { restorableWindow } from '../../src/repository/restorable-window.ts';
import { formatLsn, parseLsn } from '../../src/wal/lsn.ts';
import { listWalGaps } from '../../src/repository/wal-gap-incidents.ts';
import { onExit } from '../harness/cleanup.ts';
import { runWarden, WARDEN_BIN, type CliRun } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

// Issue 11, items 1-3: slots owned per repository, backups that neither hang on a busy slot nor
// leave one behind, and the upgrade path of repositories that streamed through `warden`.

let cluster: TestCluster;
let db: string;
const children = new Set<ChildProcess>();

before(async () => {
  cluster = await startCluster();
  db = `${cluster.url()}?sslmode=disable`;
  await cluster.query('CREATE TABLE t (id int, pad text)');
});
after(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  }
  await cluster?.stop();
});

const repoDir = (name: string) => path.join(cluster.workDir, `repo-${name}`);

/**
 * Runs a one-shot command. The guard only turns a hang (the old behaviour of item 2) into a
 * failure instead of the suite's timeout; it is no performance bound.
 */
async function warden(args: string[]): Promise<CliRun> {
  const run = runWarden([...args, '--db', db, '--no-encryption'], { cwd: cluster.workDir });
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<CliRun>((resolve) => {
    timer = setTimeout(() => resolve({ code: -1, stdout: '', stderr: 'hung for 5 minutes' }), 300_000);
  });
  try {
    return await Promise.race([run, guard]);
  } finally {
    clearTimeout(timer);
  }
}

function errorCode(run: CliRun): string | undefined {
  try {
    return (JSON.parse(run.stdout) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

/** `warden wal stream` as a user runs it; `stop()` sends SIGINT and waits for the exit. */
function walStream(repo: string, extra: string[] = []) {
  const child = spawn(
    process.execPath,
    [WARDEN_BIN, 'wal', 'stream', '--db', db, '--repo', repo, '--no-encryption', ...extra],
    { cwd: cluster.workDir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  const removeHook = onExit(() => child.kill('SIGKILL'));
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let done = false;
  const exited = once(child, 'exit').then(([code]) => {
    removeHook();
    children.delete(child);
    done = true;
    return code as number | null;
  });
  return {
    output: () => output,
    exited,
    hasExited: () => done,
    async stop(): Promise<number | null> {
      if (child.exitCode === null) child.kill('SIGINT');
      return exited;
    },
  };
}

async function currentLsn(): Promise<bigint> {
  const [row] = await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(row!.lsn);
}

/** Waits until the repository holds WAL up to the server's current position. */
async function waitForArchive(repo: string, stream: ReturnType<typeof walStream>): Promise<void> {
  const target = await currentLsn();
  const store = new FsObjectStore(repo);
  for (;;) {
    if (stream.hasExited()) assert.fail(`wal stream exited early:\n${stream.output()}`);
    if (
      (await store.stat('warden-repo.json')) &&
      (await repositoryWalEnd(await Repository.open(store))) >= target
    )
      return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function writeWal(segments: number): Promise<void> {
  for (let i = 0; i < segments; i += 1) {
    await cluster.query("INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g");
    await cluster.query('SELECT pg_switch_wal()');
  }
}

async function meta(repo: string): Promise<RepositoryMeta> {
  return JSON.parse(await readFile(path.join(repo, 'warden-repo.json'), 'utf8')) as RepositoryMeta;
}

async function slotNames(): Promise<string[]> {
  const rows = await cluster.query<{ slot_name: string }>(
    'SELECT slot_name FROM pg_replication_slots ORDER BY 1',
  );
  return rows.map((row) => row.slot_name);
}

async function gaps(repo: string) {
  const repository = await Repository.open(new FsObjectStore(repo));
  return restorableWindow([], await readWalInventory(repository), repository.meta.walSegmentSize).gaps;
}

test('a one-off backup leaves no replication slot behind and still has its WAL', async () => {
  const before = await slotNames();
  const run = await warden(['backup', '--repo', repoDir('oneoff'), '--json']);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(await slotNames(), before);
  const report = JSON.parse(run.stdout) as { steps: Array<{ name: string; detail?: string }> };
  assert.match(
    report.steps.find((s) => s.name === 'reserve WAL')?.detail ?? '',
    /^temporary slot warden_tmp_/,
  );
  const list = await runWarden(['backup', 'list', '--repo', repoDir('oneoff'), '--json'], {
    cwd: cluster.workDir,
  });
  const window = (JSON.parse(list.stdout) as { window: { earliest?: string } }).window;
  assert.ok(window.earliest, 'the backup is restorable: its WAL was archived through the temporary slot');
});

test('two repositories on one cluster get their own slots; a backup of one leaves no gap in the other', async () => {
  const a = repoDir('a');
  const b = repoDir('b');
  let stream = walStream(a);
  await waitForArchive(a, stream);
  assert.equal(await stream.stop(), 0, stream.output());
  await writeWal(3);
  const backup = await warden(['backup', '--repo', b, '--json']);
  assert.equal(backup.code, 0, backup.stderr);
  await writeWal(2);
  stream = walStream(a);
  await waitForArchive(a, stream);
  assert.equal(await stream.stop(), 0, stream.output());
  const [metaA, metaB] = [await meta(a), await meta(b)];
  assert.ok(metaA.slot && metaB.slot);
  assert.notEqual(metaA.slot, metaB.slot);
  assert.deepEqual(await gaps(a), [], 'repository A has all WAL since it first streamed');
  // B's backup used a temporary slot: only A's slot is on the server.
  assert.ok((await slotNames()).includes(metaA.slot));
  assert.ok(!(await slotNames()).includes(metaB.slot));
});

test("a backup while another repository streams neither waits for it nor touches its slot; another repository's slot is refused", async () => {
  const a = repoDir('a');
  const stream = walStream(a);
  try {
    await waitForArchive(a, stream);
    const backup = await warden(['backup', '--repo', repoDir('c'), '--json']);
    assert.equal(backup.code, 0, backup.stderr);
    // Naming A's slot for C: refused at once, naming both.
    const slotA = (await meta(a)).slot!;
    const refused = await warden(['backup', '--repo', repoDir('c'), '--slot', slotA, '--json']);
    assert.equal(errorCode(refused), 'WARDEN_E_SLOT_NOT_OWNED', refused.stdout + refused.stderr);
    assert.equal(refused.code, 6);
    const fresh = await warden(['backup', '--repo', repoDir('c2'), '--slot', slotA, '--json']);
    assert.equal(errorCode(fresh), 'WARDEN_E_SLOT_NOT_OWNED', fresh.stdout + fresh.stderr);
  } finally {
    assert.equal(await stream.stop(), 0, stream.output());
  }
  assert.deepEqual(await gaps(a), []);
});

test('a backup whose slot another connection holds fails fast with WARDEN_E_SLOT_BUSY', async () => {
  const d = repoDir('d');
  const stream = walStream(d);
  await waitForArchive(d, stream);
  assert.equal(await stream.stop(), 0, stream.output());
  const slot = (await meta(d)).slot!;
  // A foreign consumer (not this repository's stream: no wal-stream lock) holds D's slot.
  const foreign = await ReplicationClient.connect({ ...connectionFromUrl(cluster.url()), tls: 'disable' });
  const [row] = await foreign.command(`READ_REPLICATION_SLOT "${slot}"`);
  const holding = foreign.stream(`START_REPLICATION SLOT "${slot}" PHYSICAL ${row!.restart_lsn} TIMELINE 1`);
  const drained = (async () => {
    for await (const event of holding.events) void event;
  })().catch(() => undefined);
  try {
    for (;;) {
      const [active] = await cluster.query<{ active: boolean }>(
        'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
        [slot],
      );
      if (active?.active) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const checkpoints = async () =>
      (await cluster.query<{ n: string }>('SELECT checkpoints_req::text AS n FROM pg_stat_bgwriter'))[0]!.n;
    const checkpointsBefore = await checkpoints();
    const backup = await warden(['backup', '--repo', d, '--json']);
    assert.equal(errorCode(backup), 'WARDEN_E_SLOT_BUSY', backup.stdout + backup.stderr);
    assert.equal(backup.code, 6);
    // It failed before BASE_BACKUP (whose CHECKPOINT 'fast' would count), not after retrying.
    assert.equal(await checkpoints(), checkpointsBefore);
    assert.deepEqual(
      await runWarden(['backup', 'list', '--repo', d, '--json'], { cwd: cluster.workDir }).then(
        (r) => (JSON.parse(r.stdout) as { backups: unknown[] }).backups,
      ),
      [],
    );
  } finally {
    foreign.destroy();
    await drained;
  }
});

test('a repository that streamed through `warden` before slots were recorded keeps it; one whose WAL it does not continue gets its own', async () => {
  const legacy = repoDir('legacy');
  let stream = walStream(legacy, ['--slot', 'warden']);
  await waitForArchive(legacy, stream);
  assert.equal(await stream.stop(), 0, stream.output());
  // Make it look like a repository written before slots were recorded.
  const stripLegacy = async (repo: string) => {
    const { repositoryId, slot, slotCreatedAt, ...old } = await meta(repo);
    void repositoryId;
    void slot;
    void slotCreatedAt;
    await writeFile(path.join(repo, 'warden-repo.json'), `${JSON.stringify(old, null, 2)}\n`);
  };
  await stripLegacy(legacy);
  await writeWal(2);
  const slotsBefore = await slotNames();
  stream = walStream(legacy);
  await waitForArchive(legacy, stream);
  assert.equal(await stream.stop(), 0, stream.output());
  const upgraded = await meta(legacy);
  assert.equal(upgraded.slot, 'warden');
  assert.match(upgraded.repositoryId ?? '', /^[0-9a-f]{32}$/);
  assert.deepEqual(
    await slotNames(),
    slotsBefore,
    'no new slot: the repository kept streaming through warden',
  );
  assert.deepEqual(await gaps(legacy), [], 'the upgrade left no gap');

  // Another pre-upgrade repository (backups only, taken after the stream stopped), whose WAL runs
  // on past `warden`'s position: not adopted, and its backups leave `warden` alone.
  const other = repoDir('legacy-other');
  await writeWal(1);
  const backup = await warden(['backup', '--repo', other, '--json']);
  assert.equal(backup.code, 0, backup.stderr);
  await stripLegacy(other);
  await writeWal(1);
  const [wardenBefore] = await cluster.query<{ lsn: string }>(
    "SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'warden'",
  );
  const second = await warden(['backup', '--repo', other, '--json']);
  assert.equal(second.code, 0, second.stderr);
  assert.notEqual((await meta(other)).slot, 'warden');
  const [wardenAfter] = await cluster.query<{ lsn: string }>(
    "SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'warden'",
  );
  assert.equal(wardenAfter?.lsn, wardenBefore?.lsn, "the other repository's backup did not consume warden");
});

test('slot list names owners; slot drop refuses while the repository lacks WAL the slot holds, unless forced', async () => {
  const a = repoDir('a');
  const slotA = (await meta(a)).slot!;
  const list = await runWarden(['slot', 'list', '--db', db, '--repo', a, '--json'], { cwd: cluster.workDir });
  assert.equal(list.code, 0, list.stderr);
  const slots = (JSON.parse(list.stdout) as { slots: Array<{ name: string; own: boolean; owner: string }> })
    .slots;
  assert.deepEqual(
    slots.filter((s) => s.own).map((s) => s.name),
    [slotA],
  );
  assert.ok(slots.some((s) => s.name === 'warden' && !s.own));
  await writeWal(1);
  // The idle slot is reported by a command that connects.
  const backupWarn = await warden(['dump', '--repo', a, '--database', 'postgres', '--json']);
  const idle = new RegExp(`warning: slot ${slotA} of this repository is inactive`);
  assert.match(backupWarn.stderr, idle);
  // A drill connects too (repository A holds no backup, so it fails at once, after the warning).
  const drill = await warden(['drill', '--repo', a, '--json']);
  assert.equal(drill.code, 7, drill.stdout + drill.stderr);
  assert.match(drill.stderr, idle);
  const status = await runWarden(['status', '--db', db, '--repo', a, '--json'], { cwd: cluster.workDir });
  const [clusterStatus] = (
    JSON.parse(status.stdout) as {
      clusters: Array<{ walStream: { slot?: { name: string; active?: boolean } }; alerts: string[] }>;
    }
  ).clusters;
  assert.equal(clusterStatus?.walStream.slot?.name, slotA);
  assert.equal(clusterStatus?.walStream.slot?.active, false);
  assert.ok(clusterStatus?.alerts.some((alert) => alert.startsWith(`slot ${slotA} is inactive`)));
  const refused = await runWarden(['slot', 'drop', slotA, '--db', db, '--repo', a, '--json'], {
    cwd: cluster.workDir,
  });
  assert.equal(errorCode(refused), 'WARDEN_E_SLOT_HOLDS_WAL', refused.stdout + refused.stderr);
  assert.ok((await slotNames()).includes(slotA));
  // So does a guarded migration (its protection then consumes the slot: more WAL for the drop).
  const migrate = await runWarden(
    ['migrate', '--db', db, '--repo', a, '--no-encryption', '--json', '--', 'true'],
    { cwd: cluster.workDir },
  );
  assert.equal(migrate.code, 0, migrate.stdout + migrate.stderr);
  assert.match(migrate.stderr, idle);
  await writeWal(1);
  const forced = await runWarden(['slot', 'drop', slotA, '--db', db, '--repo', a, '--force', '--json'], {
    cwd: cluster.workDir,
  });
  assert.equal(forced.code, 0, forced.stderr);
  assert.ok((JSON.parse(forced.stdout) as { lost?: { bytes: number } }).lost!.bytes > 0);
  assert.ok(!(await slotNames()).includes(slotA));
});

test('a slot that another repository consumed is refused, not streamed through with a hole', async () => {
  const x = repoDir('x');
  const stream = walStream(x, ['--slot', 'shared']);
  await waitForArchive(x, stream);
  assert.equal(await stream.stop(), 0, stream.output());
  await writeWal(1);
  // Y names the same slot: it never streamed through it, and the slot stands beyond Y's WAL.
  const [before] = await cluster.query<{ lsn: string }>(
    "SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'shared'",
  );
  const refused = await warden(['backup', '--repo', repoDir('y'), '--slot', 'shared', '--json']);
  assert.equal(errorCode(refused), 'WARDEN_E_SLOT_NOT_OWNED', refused.stdout + refused.stderr);
  const [afterRefusal] = await cluster.query<{ lsn: string }>(
    "SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'shared'",
  );
  assert.equal(afterRefusal?.lsn, before?.lsn, "X's slot was not consumed");
  const again = walStream(x, ['--slot', 'shared']);
  await waitForArchive(x, again);
  assert.equal(await again.stop(), 0, again.output());
  assert.deepEqual(await gaps(x), []);
});

test('an invalidated slot (wal_status lost) is a recorded WAL gap: the stream stops (WARDEN_E_WAL_GAP), --continue-after-gap drops and recreates it; a backup still works', async () => {
  const small = await startCluster({ settings: { max_slot_wal_keep_size: '32MB', wal_keep_size: 0 } });
  try {
    const smallDb = `${small.url()}?sslmode=disable`;
    const repo = path.join(small.workDir, 'repo-lost');
    const args = (more: string[]) => [...more, '--db', smallDb, '--repo', repo, '--no-encryption'];
    const child = spawn(process.execPath, [WARDEN_BIN, ...args(['wal', 'stream'])], {
      cwd: small.workDir,
      stdio: 'ignore',
    });
    const removeHook = onExit(() => child.kill('SIGKILL'));
    const exited = once(child, 'exit');
    const store = new FsObjectStore(repo);
    const [start] = await small.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    while (
      !(await store.stat('warden-repo.json')) ||
      (await repositoryWalEnd(await Repository.open(store))) < parseLsn(start!.lsn)
    )
      await new Promise((resolve) => setTimeout(resolve, 100));
    child.kill('SIGINT');
    await exited;
    removeHook();
    const slot = (await meta(repo)).slot!;
    await small.query('CREATE TABLE t (id int)');
    for (;;) {
      await small.query('INSERT INTO t SELECT generate_series(1, 1000)');
      await small.query('SELECT pg_switch_wal()');
      await small.query('CHECKPOINT');
      const [row] = await small.query<{ wal_status: string }>(
        'SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1',
        [slot],
      );
      if (row?.wal_status === 'lost') break;
    }
    const endBefore = await repositoryWalEnd(await Repository.open(store));
    const stream = await runWithGuard(args(['wal', 'stream', '--json']), small.workDir, 120_000);
    assert.equal(errorCode(stream), 'WARDEN_E_WAL_GAP', stream.stdout + stream.stderr);
    assert.equal(stream.code, 5);
    const { gaps: recorded } = await listWalGaps(await Repository.open(store));
    assert.deepEqual(
      recorded.map((g) => [g.from, g.cause, g.slot]),
      [[formatLsn(endBefore), 'slot-invalidated', slot]],
    );
    // A backup still works (through a temporary slot), and resolves the gap.
    const backup = await runWithGuard(args(['backup', '--json']), small.workDir, 300_000);
    assert.equal(backup.code, 0, backup.stderr);
    assert.match(backup.stderr, /invalidated/);
    // With the flag the invalidated slot is dropped and created again, and streaming goes on.
    const continued = spawn(
      process.execPath,
      [WARDEN_BIN, ...args(['wal', 'stream', '--continue-after-gap'])],
      { cwd: small.workDir, stdio: 'ignore' },
    );
    const removeContinued = onExit(() => continued.kill('SIGKILL'));
    const continuedExit = once(continued, 'exit');
    const [now] = await small.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    while ((await repositoryWalEnd(await Repository.open(store))) < parseLsn(now!.lsn))
      await new Promise((resolve) => setTimeout(resolve, 100));
    const [recreated] = await small.query<{ wal_status: string }>(
      'SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    assert.notEqual(recreated?.wal_status, 'lost');
    continued.kill('SIGINT');
    assert.deepEqual(await continuedExit, [0, null]);
    removeContinued();
    // The WAL between the backup's end and the new slot is a gap of its own (recorded, not
    // refused); the first one stays resolved by the backup.
    const status = await runWarden(['status', ...args(['--json'])], { cwd: small.workDir });
    const gapStates = (
      JSON.parse(status.stdout) as { clusters: Array<{ walGaps: Array<{ from: string; state: string }> }> }
    ).clusters[0]!.walGaps;
    assert.deepEqual(gapStates[0], { ...gapStates[0], from: formatLsn(endBefore), state: 'resolved' });
  } finally {
    await small.stop();
  }
});

/** A command that the old code ran forever: the guard turns that into a failure. */
async function runWithGuard(args: string[], cwd: string, ms: number): Promise<CliRun> {
  const child = spawn(process.execPath, [WARDEN_BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const removeHook = onExit(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  removeHook();
  return { code: code ?? -1, stdout, stderr };
}

test('a slot the repository created but never streamed through (killed before the first flush) is still its own', async () => {
  const repo = repoDir('fresh-slot');
  const store = new FsObjectStore(repo);
  const client = await ReplicationClient.connect({ ...connectionFromUrl(cluster.url()), tls: 'disable' });
  try {
    const identity = await client.identifySystem();
    const repository = await Repository.openFor(store, {
      systemId: identity.systemId,
      walSegmentSize: 16 * 1024 * 1024,
      serverVersion: await client.show('server_version'),
    });
    // What the receiver leaves when it dies right after creating the slot: the slot and its
    // creation point recorded, no WAL in the repository yet.
    const slot = repository.meta.slot!;
    await client.createSlot(slot);
    const created = await client.readSlot(slot);
    await repository.recordSlot(slot, created!.restartLsn!);
  } finally {
    await client.close();
  }
  await writeWal(1);
  const stream = walStream(repo);
  await waitForArchive(repo, stream);
  assert.equal(await stream.stop(), 0, stream.output());
});
