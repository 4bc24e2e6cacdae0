import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { chownTree, serverRunAs } from '../../src/postgres/os-user.ts';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory } from '../../src/repository/wal-archive.ts';
import type { VerifyReport } from '../../src/verify/verify-report.ts';
import { freePort } from '../../src/util/free-port.ts';
import { formatLsn, parseLsn, type Lsn } from '../../src/wal/lsn.ts';
import { onExit } from '../harness/cleanup.ts';
import { runWarden, WARDEN_BIN, type CliRun } from '../harness/cli.ts';
import type { TestCluster } from '../harness/postgres.ts';

// Helpers of the CLI kill loops (issue 11, "a fault suite in the project"): the real `warden`
// CLI as separate processes, killed with SIGKILL at random moments, and the invariants checked
// after each kill. Every loop is bounded by a count; nothing here bounds wall-clock time.

/**
 * A small seeded PRNG (mulberry32), so a failing run can be repeated: the seed is printed and
 * WARDEN_FAULT_SEED sets it.
 */
export function seededRandom(): { seed: number; next(): number; between(a: number, b: number): number } {
  const seed = Number(process.env.WARDEN_FAULT_SEED ?? Math.floor(Math.random() * 2 ** 31));
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { seed, next, between: (a, b) => a + (b - a) * next() };
}

/** A loop count, scaled by WARDEN_FAULT_SCALE (e.g. 3 for a longer campaign outside CI). */
export function faultCount(base: number): number {
  const scale = Number(process.env.WARDEN_FAULT_SCALE ?? 1);
  return Math.max(1, Math.round(base * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface WardenProcess {
  readonly child: ChildProcess;
  output(): string;
  stdout(): string;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  hasExited(): boolean;
  /** SIGKILL and wait until reaped; no-op when it has exited. Returns whether it was still running. */
  kill(): Promise<boolean>;
  /** SIGINT and wait for the exit code. */
  interrupt(): Promise<number | null>;
}

/** The `warden` CLI against one cluster and repository, run in the cluster's work dir. */
export class WardenCli {
  readonly db: string;
  private readonly children = new Set<ChildProcess>();

  constructor(
    readonly cluster: TestCluster,
    readonly repoDir: string,
  ) {
    this.db = `${cluster.url()}?sslmode=disable`;
  }

  private args(args: string[]): string[] {
    return [...args, '--db', this.db, '--repo', this.repoDir, '--no-encryption'];
  }

  /** Runs a one-shot command to its end. */
  run(args: string[]): Promise<CliRun> {
    return runWarden(this.args(args), { cwd: this.cluster.workDir });
  }

  /** Runs a command with `--json` that must succeed; returns its parsed report. */
  async json<T>(args: string[]): Promise<T> {
    const run = await this.run([...args, '--json']);
    assert.equal(run.code, 0, `warden ${args.join(' ')} exited ${run.code}:\n${run.stdout}\n${run.stderr}`);
    return JSON.parse(run.stdout) as T;
  }

  /** Starts a command as a child process (to be killed). */
  spawn(args: string[]): WardenProcess {
    const child = spawn(process.execPath, [WARDEN_BIN, ...this.args(args)], {
      cwd: this.cluster.workDir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.children.add(child);
    const removeHook = onExit(() => child.kill('SIGKILL'));
    let output = '';
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      stdout += chunk.toString();
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    let done = false;
    const exited = once(child, 'exit').then(([code]) => {
      removeHook();
      this.children.delete(child);
      done = true;
      return code as number | null;
    });
    return {
      child,
      output: () => output,
      stdout: () => stdout,
      exited,
      hasExited: () => done,
      async kill() {
        if (done) return false;
        child.kill('SIGKILL');
        await exited;
        return true;
      },
      async interrupt() {
        if (!done) child.kill('SIGINT');
        return exited;
      },
    };
  }

  /** Kills whatever is still running (for `after`). */
  async killAll(): Promise<void> {
    for (const child of [...this.children]) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  }
}

export async function currentLsn(cluster: TestCluster): Promise<Lsn> {
  const [row] = await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return parseLsn(row!.lsn);
}

export interface DurableWal {
  /** Where the repository's WAL on the timeline starts (its first segment). */
  start: Lsn;
  /** End of the WAL held without a hole from `start` (complete segments and partials' frames). */
  contiguousEnd: Lsn;
  /** End of the furthest WAL held (equal to contiguousEnd when there is no hole). */
  furthestEnd: Lsn;
  /** `wal/stream-state.json`'s flushedLsn, when present. */
  streamStateFlushed?: Lsn;
}

/**
 * What the repository holds durably on one timeline, read through the library
 * (readWalInventory): archived segments (their valid bytes) and partial segments (the WAL in
 * their complete frames).
 */
export async function durableWal(repoDir: string, timeline = 1): Promise<DurableWal> {
  const repository = await Repository.open(new FsObjectStore(repoDir));
  const inventory = await readWalInventory(repository);
  const pieces = [
    ...(inventory.segments.get(timeline) ?? []).map((r) => ({
      start: parseLsn(r.startLsn),
      end: parseLsn(r.startLsn) + BigInt(r.validBytes),
    })),
    ...inventory.partials
      .filter((p) => p.timeline === timeline)
      .map((p) => ({ start: p.startLsn, end: p.startLsn + BigInt(p.validBytes) })),
  ].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const start = pieces[0]?.start ?? 0n;
  let contiguousEnd = start;
  let furthestEnd = start;
  let holeFound = false;
  for (const piece of pieces) {
    if (piece.end > furthestEnd) furthestEnd = piece.end;
    if (holeFound) continue;
    if (piece.start > contiguousEnd) holeFound = true;
    else if (piece.end > contiguousEnd) contiguousEnd = piece.end;
  }
  const flushed = inventory.streamState?.flushedLsn;
  return {
    start,
    contiguousEnd,
    furthestEnd,
    ...(flushed !== undefined ? { streamStateFlushed: parseLsn(flushed) } : {}),
  };
}

/**
 * WAL bytes the repository holds per segment (timeline/segment → valid bytes of its archived
 * copy or of its partial's complete frames, whichever is more).
 */
export async function heldWalBytes(repoDir: string): Promise<Map<string, number>> {
  const repository = await Repository.open(new FsObjectStore(repoDir));
  const inventory = await readWalInventory(repository);
  const held = new Map<string, number>();
  const note = (timeline: number, segment: string, bytes: number) => {
    const key = `${timeline}/${segment}`;
    held.set(key, Math.max(held.get(key) ?? 0, bytes));
  };
  for (const [timeline, records] of inventory.segments)
    for (const record of records) note(timeline, record.segment, record.validBytes);
  for (const partial of inventory.partials) note(partial.timeline, partial.segment, partial.validBytes);
  return held;
}

/** Segments of which `after` holds fewer bytes than `before` (WAL the repository lost). */
export function lostWalSegments(before: Map<string, number>, after: Map<string, number>): string[] {
  return [...before]
    .filter(([key, bytes]) => (after.get(key) ?? 0) < bytes)
    .map(([key, bytes]) => `${key} (${bytes} → ${after.get(key) ?? 0} bytes)`);
}

export interface SlotRow {
  slot_name: string;
  temporary: boolean;
  active: boolean;
  restart_lsn: string | null;
}

export async function replicationSlots(cluster: TestCluster): Promise<SlotRow[]> {
  return cluster.query<SlotRow>(
    'SELECT slot_name, temporary, active, restart_lsn::text AS restart_lsn FROM pg_replication_slots ORDER BY 1',
  );
}

/** The slot recorded in the repository's `warden-repo.json`. */
export async function recordedSlot(repoDir: string): Promise<string | undefined> {
  const meta = JSON.parse(await readFile(path.join(repoDir, 'warden-repo.json'), 'utf8')) as {
    slot?: string;
  };
  return meta.slot;
}

/**
 * Waits (polling; bounded only by the test's timeout) until `condition` holds, failing early
 * when `alive` says the process it waits for has gone.
 */
export async function waitUntil(
  condition: () => Promise<boolean>,
  alive: () => boolean = () => true,
  what = 'condition',
): Promise<void> {
  for (;;) {
    if (await condition()) return;
    if (!alive()) assert.fail(`gave up waiting for ${what}: the process it depends on exited`);
    await sleep(50);
  }
}

/**
 * Files of a directory repository that are unfinished writes (`*.tmp-*`) — leftovers of a killed
 * writer — below `under` (a top-level directory such as `backups`), or anywhere.
 */
export async function tempObjects(repoDir: string, under?: string): Promise<string[]> {
  const dir = under ? path.join(repoDir, under) : repoDir;
  if (!existsSync(dir)) return [];
  return (await readdir(dir, { recursive: true })).filter((f) => f.includes('.tmp-')).sort();
}

/** Everything in the repository's `locks/`: held locks (`*.lock`) and what else is there. */
export async function lockDir(repoDir: string): Promise<{ locks: string[]; other: string[] }> {
  const dir = path.join(repoDir, 'locks');
  const entries = existsSync(dir) ? (await readdir(dir)).sort() : [];
  return {
    locks: entries.filter((f) => f.endsWith('.lock')),
    other: entries.filter((f) => !f.endsWith('.lock')),
  };
}

/** Entries of the repository's `backups/` directory (committed or not). */
export async function backupDirs(repoDir: string): Promise<string[]> {
  const dir = path.join(repoDir, 'backups');
  return existsSync(dir) ? (await readdir(dir)).sort() : [];
}

export interface BackupListing {
  backups: Array<{ id: string }>;
}

/**
 * `warden verify --json` and what it says about the listed backups: every listed backup must be
 * restorable and no problem may name one of them. Problems outside those (WAL between one-off
 * backups that nothing streamed, leftovers of an interrupted command that nothing lists) are
 * returned for the caller to judge.
 */
export async function verifyListed(
  cli: WardenCli,
  listed: string[],
): Promise<{ report: VerifyReport; others: string[] }> {
  const run = await cli.run(['verify', '--json']);
  const report = JSON.parse(run.stdout) as VerifyReport;
  for (const id of listed) {
    const verdict = report.backups.find((b) => b.id === id);
    assert.ok(verdict, `verify reports on listed backup ${id}`);
    assert.equal(verdict.restorable, true, `listed backup ${id} verifies:\n${run.stdout}`);
  }
  // A WAL gap after a backup (WAL between one-off backups that nothing streamed) only limits
  // how far it restores; the verdict above already says its own WAL is there.
  const blocking = report.problems.filter(
    (p) => p.kind !== 'wal-gap' && (p.backups ?? []).some((id) => listed.includes(id)),
  );
  assert.deepEqual(blocking, [], 'no problem touches a listed backup');
  return { report, others: report.problems.map((p) => `${p.kind} ${p.object}`) };
}

/**
 * Tries to start a data directory left behind (by a killed restore) as its owner would, with
 * `pg_ctl start` on a free port: chowns it to the server's OS user first, as a user who runs
 * restores as that user would have it. Returns whether PostgreSQL accepted connections (it is
 * stopped again at once).
 */
export async function startsAsServer(cluster: TestCluster, dataDir: string): Promise<boolean> {
  const runAs = serverRunAs();
  await chownTree(dataDir, runAs);
  await chmod(dataDir, 0o700);
  const instance = new LocalInstance({
    binaries: cluster.instance.binaries,
    dataDir,
    port: await freePort(),
    runAs,
  });
  try {
    await instance.start({ timeoutSeconds: 60 });
  } catch {
    return false;
  }
  await instance.stop({ mode: 'immediate' });
  return true;
}

export { formatLsn, parseLsn };
