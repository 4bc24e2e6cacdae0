import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { repositoryWalEnd } from '../../src/backup/repository-slot.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import type { RepositoryMeta } from '../../src/repository/repository-meta.ts';
import { listWalGaps, walGapKey, type WalGapState } from '../../src/repository/wal-gap-incidents.ts';
import { formatLsn, parseLsn } from '../../src/wal/lsn.ts';
import { onExit } from '../harness/cleanup.ts';
import { runWarden, WARDEN_BIN, type CliRun } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

// Issue 11, "a gap is an incident, not a log line": a WAL gap the receiver creates when it
// resumes is recorded in the repository, stops `wal stream` (exit 5) unless told to continue,
// and fails `warden status` until a full backup taken after it completed.

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

/** A one-shot command, killed after `ms` (today's `wal stream` carries on over a gap forever). */
async function warden(args: string[], ms = 120_000): Promise<CliRun> {
  const child = spawn(process.execPath, [WARDEN_BIN, ...args, '--db', db, '--no-encryption'], {
    cwd: cluster.workDir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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

function errorOf(run: CliRun): { code?: string; hint?: string; details?: Record<string, unknown> } {
  try {
    return (JSON.parse(run.stdout) as { error?: { code?: string } }).error ?? {};
  } catch {
    return {};
  }
}

/** `warden wal stream` running until `stop()` (SIGINT). */
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
  await cluster.query('CHECKPOINT');
}

async function meta(repo: string): Promise<RepositoryMeta> {
  return JSON.parse(await readFile(path.join(repo, 'warden-repo.json'), 'utf8')) as RepositoryMeta;
}

interface StatusJson {
  clusters: Array<{
    walGaps: WalGapState[];
    alerts: string[];
    unreadableGaps?: unknown[];
    findings: Array<{ code: string; message: string }>;
  }>;
}

async function status(repo: string): Promise<{ code: number; cluster: StatusJson['clusters'][number] }> {
  const run = await runWarden(['status', '--db', db, '--repo', repo, '--json'], { cwd: cluster.workDir });
  return { code: run.code, cluster: (JSON.parse(run.stdout) as StatusJson).clusters[0]! };
}

/** Streams until the repository has the server's WAL, then stops the stream (it exits 0). */
async function streamOnce(repo: string): Promise<void> {
  const stream = walStream(repo);
  await waitForArchive(repo, stream);
  assert.equal(await stream.stop(), 0, stream.output());
}

test('a slot dropped while the stream was stopped: the gap is recorded, `wal stream` exits 5; with --continue-after-gap it streams on; status fails until a full backup after the gap', async () => {
  const repo = repoDir('dropped');
  await streamOnce(repo);
  const store = new FsObjectStore(repo);
  // Exact, not rounded to a segment: the stopped stream's partial segment ends mid-segment.
  const endBefore = await repositoryWalEnd(await Repository.open(store));
  assert.notEqual(endBefore % (16n * 1024n * 1024n), 0n, 'the stopped stream left a partial segment');
  const slot = (await meta(repo)).slot!;
  await cluster.query('SELECT pg_drop_replication_slot($1)', [slot]);
  await writeWal(3);

  const refused = await warden(['wal', 'stream', '--repo', repo, '--json']);
  const error = errorOf(refused);
  assert.equal(error.code, 'WARDEN_E_WAL_GAP', refused.stdout + refused.stderr);
  assert.equal(refused.code, 5);
  assert.equal(error.details?.from, formatLsn(endBefore));
  assert.equal(error.details?.cause, 'slot-recreated');
  assert.match(error.hint ?? '', /full backup/);
  assert.match(error.hint ?? '', /--continue-after-gap/);

  const repository = await Repository.open(store);
  const { gaps, unreadable } = await listWalGaps(repository);
  assert.deepEqual(unreadable, []);
  assert.equal(gaps.length, 1);
  const gap = gaps[0]!;
  assert.equal(gap.timeline, 1);
  assert.equal(gap.from, formatLsn(endBefore));
  assert.ok(
    parseLsn(gap.to) > endBefore + 16n * 1024n * 1024n,
    `the gap spans the switched segments: ${gap.to}`,
  );
  assert.equal(gap.cause, 'slot-recreated');
  assert.equal(gap.slot, slot);
  assert.ok(gap.signature, 'signed like the other records');
  assert.deepEqual(await readdir(path.join(repo, 'incidents')), [
    walGapKey(1, endBefore).slice('incidents/'.length),
  ]);

  const failing = await status(repo);
  // No backup yet either: no-backup (exit 4) outranks wal-gap (5) in the probe's precedence.
  assert.equal(failing.code, 4, 'status fails while the gap is unresolved');
  assert.ok(failing.cluster.findings.some((f) => f.code === 'wal-gap' && f.message.includes(gap.from)));
  assert.deepEqual(
    failing.cluster.walGaps.map((g) => [g.from, g.state]),
    [[gap.from, 'unresolved']],
  );
  assert.ok(failing.cluster.alerts.some((a) => a.includes(gap.from) && a.includes('full backup')));

  // Without the flag again: still refused, the record is not duplicated.
  const again = await warden(['wal', 'stream', '--repo', repo, '--json']);
  assert.equal(errorOf(again).code, 'WARDEN_E_WAL_GAP', again.stdout + again.stderr);
  assert.equal((await listWalGaps(repository)).gaps.length, 1);

  const continued = walStream(repo, ['--continue-after-gap']);
  await writeWal(1);
  await waitForArchive(repo, continued);
  assert.equal(await continued.stop(), 0, continued.output());
  assert.match(continued.output(), /WAL gap recorded/);
  assert.equal((await listWalGaps(repository)).gaps.length, 1);
  // After the gap, the stream resumed at its end: a later start finds no new gap.
  await writeWal(1);
  await streamOnce(repo);
  assert.equal((await listWalGaps(repository)).gaps.length, 1);

  const backup = await warden(['backup', '--repo', repo, '--json'], 300_000);
  assert.equal(backup.code, 0, backup.stderr);
  const backupId = (JSON.parse(backup.stdout) as { backup: { id: string } }).backup.id;
  const resolved = await status(repo);
  // No stream runs here (a stream-not-running finding may remain): the gap is no finding now.
  assert.deepEqual(
    resolved.cluster.findings.filter((f) => f.code === 'wal-gap'),
    [],
    JSON.stringify(resolved.cluster.alerts),
  );
  assert.deepEqual(
    resolved.cluster.walGaps.map((g) => [g.from, g.state, g.resolvedBy]),
    [[gap.from, 'resolved', backupId]],
  );

  const verify = await runWarden(['verify', '--db', db, '--repo', repo, '--no-encryption', '--json'], {
    cwd: cluster.workDir,
  });
  const report = JSON.parse(verify.stdout) as { walGaps: WalGapState[] };
  assert.deepEqual(
    report.walGaps.map((g) => [g.from, g.to, g.cause, g.state]),
    [[gap.from, gap.to, 'slot-recreated', 'resolved']],
  );
});

test('a gap record is untrusted input: a forged or damaged one is refused by verify and fails status', async () => {
  const repo = repoDir('forged');
  await streamOnce(repo);
  const from = 0x1000000n;
  const key = walGapKey(1, from);
  await mkdir(path.join(repo, 'incidents'), { recursive: true });
  // Well-formed but unsigned: verify (which checks signatures) names it.
  await writeFile(
    path.join(repo, key),
    JSON.stringify({
      format: 1,
      timeline: 1,
      from: formatLsn(from),
      to: formatLsn(from * 2n),
      detectedAt: new Date().toISOString(),
      cause: 'server-removed-wal',
    }),
  );
  const verify = await runWarden(['verify', '--db', db, '--repo', repo, '--no-encryption', '--json'], {
    cwd: cluster.workDir,
  });
  const problems = (JSON.parse(verify.stdout) as { problems: Array<{ kind: string; object: string }> })
    .problems;
  assert.ok(
    problems.some((p) => p.kind === 'signature' && p.object === key),
    JSON.stringify(problems),
  );
  // A record under another name than its contents say, and one that is not JSON: never read as gaps.
  await writeFile(path.join(repo, walGapKey(1, from + 8n)), await readFile(path.join(repo, key)));
  await writeFile(path.join(repo, walGapKey(1, from + 16n)), '{"format":1,');
  const { gaps, unreadable } = await listWalGaps(await Repository.open(new FsObjectStore(repo)));
  assert.deepEqual(
    gaps.map((g) => g.from),
    [formatLsn(from)],
    'without a trust set only the well-formed one is read',
  );
  assert.deepEqual(unreadable.map((u) => u.object).sort(), [
    walGapKey(1, from + 8n),
    walGapKey(1, from + 16n),
  ]);
  const failing = await status(repo);
  assert.notEqual(failing.code, 0); // no backup here: no-backup (4) outranks wal-gap (5)
  assert.ok(
    failing.cluster.findings.some((f) => f.code === 'wal-gap' && f.message.includes('failed its check')),
  );
  assert.equal(failing.cluster.unreadableGaps?.length, 2);
});
