/**
 * restore_command throughput: segments per second fetched by `warden wal get %f %p` and by
 * `pgbackrest archive-get %f %p`, one process per segment as PostgreSQL runs them, on the same
 * segments (archived by one archive_command into both repositories), interleaved rounds, both
 * run as the `postgres` OS user. Writes bench/reports/wal-get.md. Not part of CI.
 *
 *   npm run build && node --import tsx bench/wal-get.ts        # ~24 segments, 3 rounds
 *   BENCH_WALGET_ROWS=1000000 BENCH_WALGET_ROUNDS=1 node --import tsx bench/wal-get.ts
 */
import { spawn } from 'node:child_process';
import { chown, copyFile, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { X25519Identity } from '../src/pipeline/encryption/age-keys.ts';
import { SigningKey, signingKeyFileText } from '../src/pipeline/signing/signing-keys.ts';
import { serverRunAs } from '../src/postgres/os-user.ts';
import { startCluster } from '../test/harness/postgres.ts';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const WARDEN = path.join(ROOT, 'bin', 'warden.js');
const ROWS = Number(process.env.BENCH_WALGET_ROWS ?? 3_000_000);
const ROUNDS = Number(process.env.BENCH_WALGET_ROUNDS ?? 3);
const log = (message: string) => process.stderr.write(`[bench wal-get] ${message}\n`);
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

function run(
  cmd: string,
  args: string[],
  cwd?: string,
  env?: NodeJS.ProcessEnv,
): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...env },
      ...(cwd ? { cwd } : {}),
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
}
const runAs = serverRunAs();
const asServer = (args: string[]): [string, string[]] =>
  runAs ? ['runuser', ['-u', runAs.user, '--', ...args]] : [args[0]!, args.slice(1)];
async function serverOwned(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (runAs) await chown(dir, runAs.uid, runAs.gid);
}

const cluster = await startCluster({ settings: { archive_mode: 'on', archive_command: '/bin/false' } });
const work = cluster.workDir;
try {
  const identity = X25519Identity.generate();
  const pgbrDir = path.join(work, 'pgbackrest');
  for (const dir of ['repo', 'log', 'lock', 'spool'].map((d) => path.join(pgbrDir, d)))
    await serverOwned(dir);
  await serverOwned(pgbrDir);
  const pgbrConf = path.join(pgbrDir, 'pgbackrest.conf');
  await writeFile(
    pgbrConf,
    [
      '[global]',
      `repo1-path=${pgbrDir}/repo`,
      `log-path=${pgbrDir}/log`,
      `lock-path=${pgbrDir}/lock`,
      `spool-path=${pgbrDir}/spool`,
      'log-level-console=warn',
      'log-level-file=off',
      'compress-type=zst',
      '',
      '[bench]',
      `pg1-path=${cluster.instance.dataDir}`,
      `pg1-port=${cluster.port}`,
      'pg1-user=postgres',
      '',
    ].join('\n'),
  );
  if (runAs) await chown(pgbrConf, runAs.uid, runAs.gid);
  const wardenDir = path.join(work, 'warden');
  await serverOwned(wardenDir);
  const identityFile = path.join(wardenDir, 'identity.txt');
  await writeFile(identityFile, `${identity.encode()}\n`, { mode: 0o600 });
  if (runAs) await chown(identityFile, runAs.uid, runAs.gid);
  const plainRepo = path.join(wardenDir, 'plain');
  const ageRepo = path.join(wardenDir, 'age');
  const signingKey = path.join(wardenDir, 'signing-key');
  const key = SigningKey.generate();
  await writeFile(signingKey, signingKeyFileText(key), { mode: 0o600 });
  if (runAs) await chown(signingKey, runAs.uid, runAs.gid);
  const pgbr = `pgbackrest --config=${pgbrConf} --stanza=bench`;
  // stanza-create connects (the password from the environment, never on a command line); archive-push does not.
  const [cmd, args] = asServer(['env', 'PGHOST=127.0.0.1', ...pgbr.split(' '), 'stanza-create']);
  const created = await run(cmd, args, undefined, { PGPASSWORD: cluster.password });
  if (created.code !== 0) throw new Error(`stanza-create: ${created.stderr}`);
  const wardenPush = (repo: string, extra: string) =>
    `${process.execPath} ${WARDEN} wal push %p --repo ${repo} --signing-key ${signingKey} ${extra}`;
  await cluster.query(
    `ALTER SYSTEM SET archive_command = '${pgbr} archive-push %p && ${wardenPush(plainRepo, '--no-encryption')} && ${wardenPush(ageRepo, `--recipient ${identity.label}`)}'`,
  );
  await cluster.query('SELECT pg_reload_conf()');
  log(`generating WAL (${ROWS} rows)`);
  await cluster.query(
    `CREATE TABLE t AS SELECT i, md5(i::text) AS a, md5((i * 7)::text) AS b FROM generate_series(1, ${ROWS}) AS i`,
  );
  const [switched] = await cluster.query<{ file: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS file');
  for (;;) {
    const [stat] = await cluster.query<{ last: string | null }>(
      'SELECT last_archived_wal AS last FROM pg_stat_archiver',
    );
    if (stat?.last && stat.last >= switched!.file) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const segments = (await readdir(path.join(plainRepo, 'wal', '00000001')))
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, 24))
    .sort();
  log(`${segments.length} segments archived into both repositories`);
  const keyId = key.id;

  interface Mode {
    label: string;
    get(segment: string, dest: string, dir: string): string[];
  }
  const warden = (repo: string, extra: string[]) => (segment: string, dest: string) => [
    process.execPath,
    WARDEN,
    'wal',
    'get',
    segment,
    dest,
    '--repo',
    repo,
    '--trust-key',
    keyId,
    ...extra,
  ];
  // pgBackRest checks that it runs in pg1-path: the restore directory is that of the restore.
  const pgbrGet = (extra: string[]) => (segment: string, dest: string, dir: string) => [
    'pgbackrest',
    `--config=${pgbrConf}`,
    '--stanza=bench',
    `--pg1-path=${dir}`,
    ...extra,
    'archive-get',
    segment,
    dest,
  ];
  const modes: Mode[] = [
    { label: 'warden wal get (background prefetcher, 8 ahead, default)', get: warden(plainRepo, []) },
    {
      label: 'warden wal get --prefetch 0 (no prefetcher: the CLI per call)',
      get: warden(plainRepo, ['--prefetch', '0']),
    },
    {
      label: 'warden wal get, age-encrypted repository (background prefetcher)',
      get: warden(ageRepo, ['--identity', identityFile]),
    },
    { label: 'pgbackrest archive-get (sync)', get: pgbrGet([]) },
    {
      label: 'pgbackrest archive-get --archive-async',
      get: pgbrGet(['--archive-async', '--archive-get-queue-max=256MiB']),
    },
  ];
  const results = new Map<string, number[]>();
  const loads: number[] = [];
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const mode of modes) {
      const dir = path.join(work, `restore-${round}-${modes.indexOf(mode)}`);
      await serverOwned(path.join(dir, 'pg_wal'));
      // pgBackRest reads pg_control in pg1-path (version, system id), as a restored data directory has it.
      await serverOwned(path.join(dir, 'global'));
      await copyFile(
        path.join(cluster.instance.dataDir, 'global', 'pg_control'),
        path.join(dir, 'global', 'pg_control'),
      );
      if (runAs) await chown(path.join(dir, 'global', 'pg_control'), runAs.uid, runAs.gid);
      await rm(path.join(pgbrDir, 'spool'), { recursive: true, force: true });
      await serverOwned(path.join(pgbrDir, 'spool'));
      const started = performance.now();
      for (const segment of segments) {
        const [c, a] = asServer(mode.get(segment, 'pg_wal/RECOVERYXLOG', dir));
        const result = await run(c, a, dir);
        if (result.code !== 0)
          throw new Error(`${mode.label} ${segment}: exit ${result.code} ${result.stderr}`);
        await rename(path.join(dir, 'pg_wal', 'RECOVERYXLOG'), path.join(dir, 'pg_wal', segment));
      }
      const seconds = (performance.now() - started) / 1000;
      const rate = segments.length / seconds;
      results.set(mode.label, [...(results.get(mode.label) ?? []), rate]);
      loads.push(os.loadavg()[0]!);
      log(
        `round ${round}: ${mode.label}: ${rate.toFixed(2)} segments/s (load ${os.loadavg()[0]!.toFixed(1)})`,
      );
      // Warden's background prefetcher stops by itself (--prefetch-idle, 10 s) and removes its
      // spool: wait for it, so it does not run beside the next mode.
      const spool = path.join(dir, 'pg_wal', 'warden-spool');
      for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
        if (!(await stat(spool).catch(() => undefined))) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      await rm(dir, { recursive: true, force: true });
    }
  }
  const lines = [
    '## `warden wal get` vs `pgbackrest archive-get` (restore_command throughput)',
    '',
    `Measured ${new Date().toISOString()} by \`bench/wal-get.ts\`: ${segments.length} WAL segments of 16 MiB (PostgreSQL ${(await cluster.query<{ v: string }>("SELECT current_setting('server_version') AS v"))[0]!.v}, a \`CREATE TABLE … md5()\` load), archived by one archive_command into a pgBackRest repository (zst) and two Warden repositories (plain, age-encrypted; zstd, signed records). Each tool then fetched every segment in order, one process per segment into \`pg_wal/RECOVERYXLOG\` as PostgreSQL runs restore_command, as the \`postgres\` OS user; ${ROUNDS} interleaved rounds, median (min–max). Warden runs the compiled CLI (\`dist/\`) on Node ${process.version}. ${os.cpus().length} vCPU shared with other work: 1-minute load average during the modes ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} (median ${median(loads).toFixed(1)}).`,
    '',
    '| restore_command | segments/s median | min–max |',
    '|---|---|---|',
    ...modes.map((mode) => {
      const rates = results.get(mode.label)!;
      return `| ${mode.label} | ${median(rates).toFixed(2)} | ${Math.min(...rates).toFixed(2)}–${Math.max(...rates).toFixed(2)} |`;
    }),
    '',
    'Reading: each call is a process. With the background prefetcher (the default), the first call misses: it starts `warden wal prefetch` (a Node process loading the CLI, configuration and keys once) and waits for it; the calls after it find their segment ready in pg_wal/warden-spool and are served by bin/wal-get-fast.js before the CLI is loaded: a Node start, a SHA-256 of the 16 MiB file and a rename. `--prefetch 0` is the old path, the whole CLI per call.',
    '',
  ];
  await mkdir(path.join(ROOT, 'bench', 'reports'), { recursive: true });
  await writeFile(path.join(ROOT, 'bench', 'reports', 'wal-get.md'), lines.join('\n'));
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  await cluster.stop();
}
