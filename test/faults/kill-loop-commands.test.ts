import assert from 'node:assert/strict';
import { existsSync, watch } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import type { VerifyReport } from '../../src/verify/verify-report.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { snapshotTree } from './helpers.ts';
import {
  backupDirs,
  faultCount,
  heldWalBytes,
  lostWalSegments,
  lockDir,
  replicationSlots,
  seededRandom,
  sleep,
  startsAsServer,
  tempObjects,
  verifyListed,
  WardenCli,
  type BackupListing,
  type WardenProcess,
} from './cli-faults.ts';

// Issue 11, fault suite: the one-shot commands `warden backup`, `warden restore` and
// `warden expire` SIGKILLed at random points, on one cluster and one repository (the backups the
// backup loop leaves are what the restore loop restores and the expire loop deletes).
// Invariants: nothing listed that does not verify and restore; no leftovers (unfinished objects,
// locks, unlisted backup directories, replication slots) after the next run; a killed restore
// never changes the repository and leaves no target that starts as if complete.

const BACKUP_KILLS = faultCount(6);
const RESTORE_KILLS = faultCount(5);
const EXPIRE_KILLS = faultCount(5);
const ROWS = 250_000;

let cluster: TestCluster;
let cli: WardenCli;
/** Kills after which the repository held less WAL than before (asserted empty below). */
const lostWal: string[] = [];
/** Backups made unrestorable by such a loss: not checked further (the test below reports them). */
const brokenByLostWal = new Set<string>();
/** The listed backups the loops check: all but those broken by the known defect. */
const checked = (ids: string[]) => ids.filter((id) => !brokenByLostWal.has(id));

async function verifyReport(): Promise<VerifyReport> {
  return JSON.parse((await cli.run(['verify', '--json'])).stdout) as VerifyReport;
}
/** Targets a killed restore left with something in them (for the start check). */
const leftTargets: string[] = [];

before(async () => {
  cluster = await startCluster();
  cli = new WardenCli(cluster, path.join(cluster.workDir, 'repo'));
  // ~40 MB, so a backup and a restore take long enough to be killed in the middle.
  await cluster.query(
    `CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v FROM generate_series(1, ${ROWS}) g`,
  );
});
after(async () => {
  await cli?.killAll();
  await cluster?.stop();
});

async function listed(): Promise<string[]> {
  if (!existsSync(path.join(cli.repoDir, 'warden-repo.json'))) return []; // no backup taken yet
  return (await cli.json<BackupListing>(['backup', 'list'])).backups.map((b) => b.id);
}

/** Some WAL between backups (and segment boundaries), so expire has WAL to delete too. */
async function writeWal(segments: number): Promise<void> {
  for (let i = 0; i < segments; i += 1) {
    await cluster.query('UPDATE big SET v = v WHERE id % 50 = $1', [i % 50]);
    await cluster.query('SELECT pg_switch_wal()');
  }
}

/** A backup run to its end; returns its id and how long the process took. */
async function fullBackup(): Promise<{ id: string; ms: number }> {
  const started = Date.now();
  const report = await cli.json<{ backup: { id: string } }>(['backup']);
  return { id: report.backup.id, ms: Date.now() - started };
}

/**
 * Runs `args` to its end, noting when `appeared()` first held (the command started writing):
 * kills are then spread over the whole run or over its working part only.
 */
async function measuredRun(
  args: string[],
  appeared: () => Promise<boolean>,
): Promise<{ stdout: string; ms: number; workingFromMs: number }> {
  const started = Date.now();
  const run = cli.spawn(args);
  let workingFromMs: number | undefined;
  while (!run.hasExited()) {
    if (workingFromMs === undefined && (await appeared())) workingFromMs = Date.now() - started;
    await sleep(10);
  }
  assert.equal(await run.exited, 0, run.output());
  const ms = Date.now() - started;
  return { stdout: run.stdout(), ms, workingFromMs: workingFromMs ?? ms };
}

/** Sleeps until `appeared()` holds or the process exits. */
async function untilWorking(run: WardenProcess, appeared: () => Promise<boolean>): Promise<void> {
  while (!run.hasExited() && !(await appeared())) await sleep(5);
}

/**
 * What killed runs left in `locks/` besides locks, and a completed run did not remove: unfinished
 * lock writes (`*.tmp-*`) and take-over claims (`*.takeover.*`). A run's lock acquisition removes
 * the ones of processes that are gone (repository-lock.ts), so none may survive it.
 */
const lockLeftovers = new Set<string>();
/** Empty directories of killed backups that a completed backup did not remove (see the last test). */
const emptyBackupDirs = new Set<string>();

/** No lock held after a completed run; notes other leftovers in `locks/`. */
async function assertNoLocks(when: string): Promise<void> {
  const { locks, other } = await lockDir(cli.repoDir);
  assert.deepEqual(locks, [], `${when}: no locks`);
  for (const file of other) lockLeftovers.add(file);
}

/** After a completed run: only committed backups, no unfinished objects, no locks, no slots. */
async function assertNoLeftovers(when: string): Promise<void> {
  const ids = await listed();
  const unlisted = (await backupDirs(cli.repoDir)).filter((d) => !ids.includes(d));
  const withContent: string[] = [];
  for (const dir of unlisted) {
    const files = await readdir(path.join(cli.repoDir, 'backups', dir), { recursive: true });
    // An empty directory of a backup killed right after creating it: issue 11 item 9, the last tests.
    if (files.length === 0) emptyBackupDirs.add(dir);
    else withContent.push(`${dir}: ${files.join(', ')}`);
  }
  assert.deepEqual(withContent, [], `${when}: no unlisted backup with objects on disk`);
  assert.deepEqual(await tempObjects(cli.repoDir, 'backups'), [], `${when}: no unfinished backup objects`);
  assert.deepEqual(await tempObjects(cli.repoDir, 'wal'), [], `${when}: no unfinished WAL objects`);
  await assertNoLocks(when);
  assert.deepEqual(
    (await replicationSlots(cluster)).map((s) => s.slot_name),
    [],
    `${when}: no replication slot left on the server`,
  );
}

/** `warden restore --backup ID --start`: the restored instance has the table, then stops. */
async function restoresBackup(id: string, dir: string): Promise<void> {
  const report = await cli.json<{ port: number }>([
    'restore',
    '--backup',
    id,
    '--target-dir',
    dir,
    '--start',
  ]);
  await checkRestored(dir, report.port);
}

async function checkRestored(dir: string, port: number): Promise<void> {
  const instance = new LocalInstance({ binaries: cluster.instance.binaries, dataDir: dir, port });
  try {
    const count = await withClient(cluster.url().replace(`:${cluster.port}/`, `:${port}/`), async (client) =>
      Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM big')).rows[0]!.n),
    );
    assert.equal(count, ROWS, `restore into ${dir} has every row`);
  } finally {
    await instance.stop({ mode: 'immediate' });
  }
}

test(`${BACKUP_KILLS} SIGKILLs of \`warden backup\` at random points: every listed backup verifies and restores; no leftovers or slots after the next backup`, async (t) => {
  const random = seededRandom();
  t.diagnostic(`WARDEN_FAULT_SEED=${random.seed}`);
  const measuredBackup = async () => {
    const dirs = await backupDirs(cli.repoDir);
    return measuredRun(['backup', '--json'], async () =>
      (await backupDirs(cli.repoDir)).some((d) => !dirs.includes(d)),
    );
  };
  // The run's duration, from the latest completed run (not the first one: it is slower, creating
  // the repository and the signing key), so kills land inside runs rather than after them.
  await measuredBackup();
  let timing = await measuredBackup();
  const fromKilled: string[] = [];
  let finishedBeforeKill = 0;
  let nextRuns = 0;
  let verified = 0;
  let before = await listed();
  for (let kill = 1; kill <= BACKUP_KILLS; kill += 1) {
    await writeWal(1);
    const held = await heldWalBytes(cli.repoDir);
    const dirs = await backupDirs(cli.repoDir);
    const backup = cli.spawn(['backup', '--json']);
    if (kill % 2 === 1) {
      // Anywhere from the process start (connecting, locking) to just past the end of a run.
      await sleep(random.between(0, timing.ms * 0.95));
    } else {
      // Once it writes the backup: transfer, WAL wait, manifest, commit.
      await untilWorking(backup, async () => (await backupDirs(cli.repoDir)).some((d) => !dirs.includes(d)));
      await sleep(random.between(0, (timing.ms - timing.workingFromMs) * 0.95));
    }
    if (!(await backup.kill())) finishedBeforeKill += 1;
    const now = await listed();
    assert.ok(
      before.every((id) => now.includes(id)),
      `kill ${kill}: no backup listed before disappeared`,
    );
    fromKilled.push(...now.filter((id) => !before.includes(id)));
    const lost = lostWalSegments(held, await heldWalBytes(cli.repoDir));
    if (lost.length > 0) {
      // The known defect (reopened-partial.test.ts): the killed run had truncated the partial
      // segment it continued. Noted for the test below; the backups it broke are left out
      // of the checks from here on, so the loop goes on checking everything else.
      const broken = (await verifyReport()).backups.filter((b) => !b.restorable).map((b) => b.id);
      for (const id of broken) brokenByLostWal.add(id);
      lostWal.push(
        `kill ${kill}: lost WAL of ${lost.join(', ')}; unrestorable now: ${broken.join(', ') || 'none'}`,
      );
    }
    await verifyListed(cli, checked(now));
    verified += checked(now).length;
    before = now;
    // Every third kill (and after the last) the next run must clean up what killed ones left.
    if (kill % 3 === 0 || kill === BACKUP_KILLS) {
      timing = await measuredBackup();
      nextRuns += 1;
      await assertNoLeftovers(`after kill ${kill} and the next backup`);
      before = await listed();
    }
  }
  // The newest listed backup restores; older ones: see the test below (issue 11 item 4).
  const newest = checked(before).at(-1)!;
  await restoresBackup(newest, path.join(cluster.workDir, `restored-${newest}`));
  olderListed.push(...checked([...fromKilled, ...before]).filter((id) => id !== newest));
  t.diagnostic(
    `${BACKUP_KILLS} backup kills (${finishedBeforeKill} finished before the kill, ${fromKilled.length} committed before it), ${verified} listed-backup verifications, ${nextRuns} next runs without leftovers or slots, the newest listed backup restored`,
  );
});

test('no killed backup destroys WAL the repository held (its partial segment)', () => {
  assert.deepEqual(lostWal, [], 'kills after which the repository held less WAL than before');
});

/** Listed backups older than the newest, those committed by killed runs first. */
const olderListed: string[] = [];

test('older listed backups restore too (at most 2: one a killed run committed, when there is one)', async (t) => {
  const ids = [...new Set(olderListed)].slice(0, 2);
  for (const id of ids) await restoresBackup(id, path.join(cluster.workDir, `restored-${id}`));
  t.diagnostic(`${ids.length} older listed backups restored`);
});

test(`${RESTORE_KILLS} SIGKILLs of \`warden restore\` at random points never change the repository; the targets they leave are refused; a later restore has every row`, async (t) => {
  const random = seededRandom();
  t.diagnostic(`WARDEN_FAULT_SEED=${random.seed}`);
  // Restores are recorded in the audit log (that is its job): everything else must stay as it was.
  const protectedData = async () =>
    Object.fromEntries(
      Object.entries(await snapshotTree(cli.repoDir)).filter(([key]) => !key.startsWith('audit/')),
    );
  const repoBefore = await protectedData();
  const workBefore = await readdir(cluster.workDir);
  const measured = path.join(cluster.workDir, 'restore-measured');
  const first = await measuredRun(['restore', '--latest', '--target-dir', measured, '--json'], async () =>
    existsSync(measured),
  );
  const outcome = { absent: 0, empty: 0, partial: 0, finished: 0 };
  for (let kill = 1; kill <= RESTORE_KILLS; kill += 1) {
    const target = path.join(cluster.workDir, `restore-killed-${kill}`);
    const restore = cli.spawn(['restore', '--latest', '--target-dir', target, '--json']);
    if (kill % 2 === 1) {
      await sleep(random.between(0, first.ms * 1.05));
    } else {
      // Once it writes the target: base backup files, WAL, recovery settings, sync.
      await untilWorking(restore, async () => existsSync(target));
      await sleep(random.between(0, (first.ms - first.workingFromMs) * 1.05));
    }
    const killed = await restore.kill();
    if (!killed) outcome.finished += 1;
    else if (!existsSync(target)) outcome.absent += 1;
    else if ((await readdir(target)).length === 0) outcome.empty += 1;
    else {
      outcome.partial += 1;
      leftTargets.push(target);
      // Restoring into what a killed restore left is refused, and leaves it as it is.
      const leftover = await snapshotTree(target);
      const again = await cli.run(['restore', '--latest', '--target-dir', target, '--json']);
      assert.notEqual(again.code, 0, `kill ${kill}: a restore into the leftover target is refused`);
      assert.deepEqual(
        await snapshotTree(target),
        leftover,
        `kill ${kill}: the refused restore left it alone`,
      );
    }
  }
  assert.deepEqual(await protectedData(), repoBefore, 'killed restores never change the repository');
  const created = (await readdir(cluster.workDir)).filter((e) => !workBefore.includes(e));
  assert.deepEqual(
    created.filter((e) => e !== 'restore-measured' && !/^restore-killed-\d+$/.test(e)),
    [],
    'nothing outside the targets (no tablespace directory beside them)',
  );
  const report = await cli.json<{ port: number }>([
    'restore',
    '--latest',
    '--target-dir',
    path.join(cluster.workDir, 'restore-after-kills'),
    '--start',
  ]);
  await checkRestored(path.join(cluster.workDir, 'restore-after-kills'), report.port);
  t.diagnostic(
    `${RESTORE_KILLS} restore kills: ${outcome.absent} left no target, ${outcome.empty} an empty one, ${outcome.partial} a partial one, ${outcome.finished} had finished; repository unchanged`,
  );
});

test('a target left by a killed restore before its recovery settings were written does not start', async (t) => {
  // Killed after the recovery settings (the last thing main writes before chown and sync),
  // the target holds every file and all the WAL: it may start. Before that it must not.
  let incomplete = 0;
  let started = 0;
  for (const target of leftTargets) {
    const files = await readdir(target);
    const autoConf = await readFile(path.join(target, 'postgresql.auto.conf'), 'utf8').catch(() => '');
    const settingsWritten = autoConf.includes('# warden restore of backup');
    if (settingsWritten) continue;
    incomplete += 1;
    if (await startsAsServer(cluster, target)) {
      started += 1;
      t.diagnostic(
        `${path.basename(target)} started: ${files.length} entries, recovery.signal ${files.includes('recovery.signal') ? 'present' : 'absent'}, pg_wal ${(await readdir(path.join(target, 'pg_wal')).catch(() => [])).length} entries`,
      );
    }
  }
  t.diagnostic(
    `${leftTargets.length} targets left by killed restores, ${incomplete} before their recovery settings, ${started} of those started`,
  );
  assert.equal(started, 0, `${started} of ${incomplete} half-restored targets started`);
});

/** Only `--keep-last` keeps backups (the default GFS tiers and maximum ages would keep them all). */
const EXPIRE_POLICY = [
  '--keep-daily',
  '0',
  '--keep-weekly',
  '0',
  '--keep-monthly',
  '0',
  '--max-age-full',
  '0',
  '--max-age-incremental',
  '0',
];

/**
 * SIGKILLs `child` after the `events`-th change below the repository directory `under`
 * (`locks`, or `backups` and `wal`), or not at all when it exits first. Returns whether it was
 * killed while running.
 */
async function killAfterChanges(
  child: ReturnType<WardenCli['spawn']>,
  under: string[],
  events: number,
): Promise<boolean> {
  let seen = 0;
  const watcher = watch(cli.repoDir, { recursive: true });
  const reached = new Promise<void>((resolve) => {
    watcher.on('change', (_type, file) => {
      if (!under.some((dir) => String(file).startsWith(`${dir}/`) || String(file) === dir)) return;
      seen += 1;
      if (seen >= events) resolve();
    });
  });
  try {
    await Promise.race([reached, child.exited]);
    return await child.kill();
  } finally {
    watcher.close();
  }
}

test(`${EXPIRE_KILLS} SIGKILLs of \`warden expire\` mid-way: everything still listed verifies; the next expire leaves only listed backups`, async (t) => {
  const random = seededRandom();
  t.diagnostic(`WARDEN_FAULT_SEED=${random.seed}`);
  // One more backup than expire runs, WAL between them: each run has a backup and WAL to delete.
  while ((await listed()).length < EXPIRE_KILLS + 1) {
    await writeWal(2);
    await fullBackup();
  }
  let killedMidway = 0;
  let verified = 0;
  let unlisted = 0;
  let walDeleted = 0;
  const walFiles = async () => (await readdir(path.join(cli.repoDir, 'wal'), { recursive: true })).length;
  for (let kill = 1; kill <= EXPIRE_KILLS; kill += 1) {
    const before = await listed();
    const walBefore = await walFiles();
    const keep = Math.max(1, before.length - 1);
    const expire = cli.spawn(['expire', ...EXPIRE_POLICY, '--keep-last', String(keep), '--json']);
    // A third of the kills while it takes the lock (or a dead run's lock over), the others
    // while it deletes: a backup (its record first), then WAL segments (data and record each).
    // A backup goes in a few milliseconds, so a third are aimed at its very first deletion.
    const killed =
      kill % 3 === 1
        ? await killAfterChanges(expire, ['locks'], Math.floor(random.between(1, 4)))
        : kill % 3 === 2
          ? await killAfterChanges(expire, ['backups'], 1) // its first deletion: a backup's record
          : await killAfterChanges(expire, ['backups', 'wal'], Math.floor(random.between(2, 8)));
    if (killed) killedMidway += 1;
    else assert.equal(await expire.exited, 0, expire.output());
    const now = await listed();
    assert.ok(
      now.every((id) => before.includes(id)),
      'expire never lists anything new',
    );
    unlisted += before.length - now.length;
    walDeleted += walBefore - (await walFiles());
    await verifyListed(cli, checked(now));
    verified += checked(now).length;
  }
  // The next, uninterrupted run takes over the dead process's lock and finishes the job.
  const final = await cli.json<{ deleted: { backups: string[] } }>([
    'expire',
    ...EXPIRE_POLICY,
    '--keep-last',
    '1',
  ]);
  const left = await listed();
  assert.equal(left.length, 1, `expire kept one backup (deleted ${final.deleted.backups.join(', ')})`);
  await verifyListed(cli, checked(left));
  assert.deepEqual(await tempObjects(cli.repoDir, 'backups'), [], 'no unfinished backup objects');
  assert.deepEqual(await tempObjects(cli.repoDir, 'wal'), [], 'no unfinished WAL objects');
  await assertNoLocks('after the next expire');
  await restoresBackup(left[0]!, path.join(cluster.workDir, 'restored-after-expire'));
  t.diagnostic(
    `${EXPIRE_KILLS} expire runs SIGKILLed (${killedMidway} mid-way, ${EXPIRE_KILLS - killedMidway} finished first; ${unlisted} backups unlisted, ${walDeleted} WAL files deleted), ${verified} listed-backup verifications, the survivor restores`,
  );
});

test('the next expire removes what a killed expire left: no unlisted backup directory, no WAL data without its record', async () => {
  assert.deepEqual(await backupDirs(cli.repoDir), (await listed()).sort(), 'only listed backups on disk');
  const walFiles = (await readdir(path.join(cli.repoDir, 'wal'), { recursive: true })).filter((f) =>
    /[0-9A-F]{24}\.zst$/.test(f),
  );
  const orphans = [];
  for (const file of walFiles)
    if (!existsSync(path.join(cli.repoDir, 'wal', file.replace(/\.zst$/, '.json')))) orphans.push(file);
  assert.deepEqual(orphans, [], 'every WAL data file has its record');
});

test('the next backup removes the empty directory of a backup killed right after creating it', () => {
  assert.deepEqual([...emptyBackupDirs], [], 'empty backup directories that survived the next backup');
});

test('a completed run removes what killed runs left in locks/ (unfinished lock writes, take-over claims)', () => {
  assert.deepEqual([...lockLeftovers].sort(), [], 'leftovers in locks/ that survived the next completed run');
});
