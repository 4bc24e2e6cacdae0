/**
 * One `warden serve` supervising many small clusters (issue 17, target 5: 20 clusters, one WAL
 * stream each, under 300 MB RSS and 5 % of one core with the streams idle).
 *
 *   node --import tsx bench/daemon-scale.ts [--clusters 20] [--seconds 60] [--rounds 3] [--no-heartbeat]
 *
 * Starts N PostgreSQL 15 instances (test/harness startCluster: shared_buffers 16MB, on free
 * loopback ports, as the `postgres` OS user under root), writes one warden.yaml with N clusters
 * (each its own filesystem repository, WAL streaming and heartbeat on as by default, encryption on
 * as by default with a keygen'd identity), and runs `node bin/warden.js serve` as a user would (the
 * compiled build when dist/ is current: `npm run build` first). Schedules: `logical-dump`,
 * `verification` and `drill` are off (null); `full-backup`, `backup` and `retention` keep their
 * defaults, so a fresh repository catches each up once at start — the measurement begins after
 * every cluster's first full backup finished, then no slot falls due for hours.
 *
 * Measured: start-up time until GET /api/status shows every stream `streaming`, the daemon's peak
 * RSS over start-up (VmHWM), then rounds of `--seconds` each, alternating "idle" (only Warden's
 * own heartbeat, 1 row/s per cluster) and "light" (plus one INSERT per second per cluster from the
 * bench process): RSS (/proc/PID/status VmRSS, every second) and CPU (utime+stime of the daemon
 * and any child, /proc/PID/stat) as % of one core. The bench process's own work is not counted.
 * `--no-heartbeat` turns the per-second heartbeat writer off (`heartbeat: false`), to tell its
 * cost from the streams' own. Writes bench/reports/daemon-scale.md (with --no-heartbeat:
 * daemon-scale-no-heartbeat.md).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort } from '../src/util/free-port.ts';
import { startCluster, type TestCluster } from '../test/harness/postgres.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
};
const CLUSTERS = arg('clusters', 20);
const SECONDS = arg('seconds', 60);
const ROUNDS = arg('rounds', 3);
const HEARTBEAT = !process.argv.includes('--no-heartbeat');
const ROOT = path.dirname(import.meta.dirname);
const BIN = path.join(ROOT, 'bin', 'warden.js');
const TICKS_PER_S = 100; // CLK_TCK on Linux

/** What bin/warden.js will run: the compiled build unless a source file is newer. */
function cliMode(): string {
  const built = path.join(ROOT, 'dist', 'cli', 'main.js');
  if (!existsSync(built)) return 'sources through tsx (no dist/)';
  const newest = (dir: string): number =>
    Math.max(
      0,
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs,
      ),
    );
  return statSync(built).mtimeMs < newest(path.join(ROOT, 'src'))
    ? 'sources through tsx (dist/ older than src/)'
    : 'compiled build (dist/)';
}

/** The process and its live descendants (a daemon may spawn pg_dump, restores …). */
function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i += 1) out.push(...(children.get(out[i]!) ?? []));
  return out;
}

/** CPU ticks (user+system, plus reaped children's) and RSS in KiB of the tree. */
function sampleTree(pid: number): { ticks: number; rssKiB: number; hwmKiB: number } {
  let ticks = 0;
  let rssKiB = 0;
  let hwmKiB = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields 14-17 (utime stime cutime cstime) are f[11..14] after the comm field
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      rssKiB += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      if (p === pid) hwmKiB = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return { ticks, rssKiB, hwmKiB };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const mib = (kib: number) => (kib / 1024).toFixed(0);

interface StatusDoc {
  clusters: Array<{
    name: string;
    walStream: { state: string };
    jobs: Array<{
      name: string;
      running: boolean;
      lastRun?: { status: string; finishedAt: string; error?: { code: string } };
      lastSuccess?: unknown;
      retry?: unknown;
    }>;
  }>;
}

async function status(port: number): Promise<StatusDoc | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/api/status`);
    return response.ok ? ((await response.json()) as StatusDoc) : undefined;
  } catch {
    return undefined;
  }
}

async function startClusters(n: number): Promise<TestCluster[]> {
  const clusters: TestCluster[] = [];
  // Four at a time: initdb is CPU-bound and the machine has two cores.
  for (let i = 0; i < n; i += 4) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(4, n - i) }, () =>
        startCluster({ settings: { shared_buffers: '16MB', max_connections: 20, wal_keep_size: '32MB' } }),
      ),
    );
    clusters.push(...batch);
  }
  return clusters;
}

/** One INSERT per second per cluster, from the bench process, until `signal` fires. */
async function lightTraffic(clusters: TestCluster[], signal: AbortSignal): Promise<void> {
  const clients = await Promise.all(
    clusters.map(async (c) => {
      const client = new pg.Client({ connectionString: c.url() });
      await client.connect();
      return client;
    }),
  );
  try {
    while (!signal.aborted) {
      const t = performance.now();
      await Promise.all(clients.map((c) => c.query("INSERT INTO bench_light(note) VALUES ('x')")));
      await sleep(Math.max(0, 1000 - (performance.now() - t)), undefined, { signal }).catch(() => undefined);
    }
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

async function measure(pid: number, seconds: number) {
  const rss: number[] = [];
  const t0 = performance.now();
  const first = sampleTree(pid);
  let last = first;
  while (performance.now() - t0 < seconds * 1000) {
    await sleep(1000);
    last = sampleTree(pid);
    rss.push(last.rssKiB);
  }
  const wallS = (performance.now() - t0) / 1000;
  return {
    rss,
    cpuPct: ((last.ticks - first.ticks) / TICKS_PER_S / wallS) * 100,
    cpuS: (last.ticks - first.ticks) / TICKS_PER_S,
  };
}

async function stopDaemon(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const late = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await exited;
  clearTimeout(late);
}

const load0 = os.loadavg()[0]!;
const mode = cliMode();
console.error(`daemon-scale: ${CLUSTERS} clusters, CLI: ${mode}, load ${load0.toFixed(2)}`);
const work = await mkdtemp(path.join(os.tmpdir(), 'warden-daemon-scale-'));
let clusters: TestCluster[] = [];
let daemon: ChildProcess | undefined;
try {
  const t = performance.now();
  clusters = await startClusters(CLUSTERS);
  console.error(`started ${clusters.length} servers in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  await Promise.all(clusters.map((c) => c.query('CREATE TABLE bench_light(id bigserial, note text)')));
  const httpPort = await freePort();
  const yaml = [
    'daemon:',
    `  http: { host: 127.0.0.1, port: ${httpPort} }`,
    '  schedules: { logical-dump: null, verification: null, drill: null }',
    '  clusters:',
    ...clusters.flatMap((c, i) => [
      `    - name: c${String(i + 1).padStart(2, '0')}`,
      `      url: ${c.url()}`,
      `      repository: ./repos/c${String(i + 1).padStart(2, '0')}`,
      ...(HEARTBEAT ? [] : ['      heartbeat: false']),
    ]),
  ].join('\n');
  await mkdir(path.join(work, 'repos'));
  await writeFile(path.join(work, 'warden.yaml'), `${yaml}\n`, { mode: 0o600 });
  const env = { ...process.env, WARDEN_LOG_LEVEL: 'warn' };
  const keygen = spawn(process.execPath, [BIN, 'repo', 'keygen', '-o', '.warden/identity.txt'], {
    cwd: work,
    env,
    stdio: 'ignore',
  });
  const [keygenCode] = await once(keygen, 'exit');
  if (keygenCode !== 0) throw new Error(`warden repo keygen exited ${keygenCode}`);

  const spawnedAt = performance.now();
  daemon = spawn(process.execPath, [BIN, 'serve', '--config', 'warden.yaml'], {
    cwd: work,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  daemon.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  daemon.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const pid = daemon.pid!;
  const startRss: number[] = [];
  let streamingS: number | undefined;
  let backedUpS: number | undefined;
  /** Failed attempts the scheduler retries (cluster/job/finishedAt: code). */
  const retried = new Map<string, string>();
  const deadline = Date.now() + 600_000;
  while (backedUpS === undefined) {
    if (daemon.exitCode !== null) throw new Error(`warden serve exited ${daemon.exitCode}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`not all streaming and backed up within 10 min:\n${output}`);
    startRss.push(sampleTree(pid).rssKiB);
    const doc = await status(httpPort);
    if (doc && doc.clusters.length === CLUSTERS) {
      const streaming = doc.clusters.filter((c) => c.walStream.state === 'streaming').length;
      if (streamingS === undefined && streaming === CLUSTERS)
        streamingS = (performance.now() - spawnedAt) / 1000;
      const done = doc.clusters.filter((c) => {
        const full = c.jobs.find((j) => j.name === 'full-backup');
        return full?.lastSuccess && !c.jobs.some((j) => j.running || j.retry);
      }).length;
      if (streamingS !== undefined && done === CLUSTERS) backedUpS = (performance.now() - spawnedAt) / 1000;
      for (const c of doc.clusters)
        for (const j of c.jobs)
          if (j.lastRun?.status === 'failed' && j.retry)
            retried.set(`${c.name}/${j.name}/${j.lastRun.finishedAt}`, j.lastRun.error?.code ?? '?');
      // A failure the scheduler retries is reported, one it gave up on ends the bench.
      const failed = doc.clusters.flatMap((c) =>
        c.jobs
          .filter((j) => j.lastRun?.status === 'failed' && !j.retry && !j.running)
          .map((j) => `${c.name}/${j.name}`),
      );
      if (failed.length) throw new Error(`jobs failed: ${failed.join(', ')}\n${output}`);
      console.error(
        `  t=${((performance.now() - spawnedAt) / 1000).toFixed(1)} s streaming ${streaming}, backed up ${done}`,
      );
    }
    await sleep(1000);
  }
  const startHwm = sampleTree(pid).hwmKiB;
  console.error(
    `all streaming after ${streamingS!.toFixed(1)} s, first backups done after ${backedUpS.toFixed(1)} s`,
  );
  // Let the start-up's garbage and the first metrics refresh settle before measuring.
  await sleep(15_000);

  const rows: string[] = [];
  const results: Record<
    'idle' | 'light',
    Array<ReturnType<typeof measure> extends Promise<infer R> ? R : never>
  > = {
    idle: [],
    light: [],
  };
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const kind of ['idle', 'light'] as const) {
      const stopTraffic = new AbortController();
      const traffic = kind === 'light' ? lightTraffic(clusters, stopTraffic.signal) : undefined;
      const r = await measure(pid, SECONDS);
      stopTraffic.abort();
      await traffic;
      const doc = await status(httpPort);
      const streaming = doc?.clusters.filter((c) => c.walStream.state === 'streaming').length ?? 0;
      results[kind].push(r);
      const line = `| ${round} | ${kind} | ${mib(median(r.rss))} | ${mib(Math.max(...r.rss))} | ${r.cpuPct.toFixed(2)} | ${r.cpuS.toFixed(2)} | ${streaming}/${CLUSTERS} | ${os.loadavg()[0]!.toFixed(2)} |`;
      console.error(line);
      rows.push(line);
    }
  }
  const summary = (['idle', 'light'] as const).map((kind) => {
    const rs = results[kind];
    const cpu = rs.map((r) => r.cpuPct);
    return `| ${kind} | ${mib(median(rs.flatMap((r) => r.rss)))} | ${mib(Math.max(...rs.flatMap((r) => r.rss)))} | ${median(cpu).toFixed(2)} (${Math.min(...cpu).toFixed(2)}–${Math.max(...cpu).toFixed(2)}) |`;
  });
  const load1 = os.loadavg()[0]!;
  const report = [
    `## A daemon supervising ${CLUSTERS} clusters (\`bench/daemon-scale.ts\`${HEARTBEAT ? '' : ', heartbeat off'})`,
    '',
    `\`node --import tsx bench/daemon-scale.ts --clusters ${CLUSTERS} --seconds ${SECONDS} --rounds ${ROUNDS}${HEARTBEAT ? '' : ' --no-heartbeat'}\` on ${new Date().toISOString()}, ${os.cpus().length} vCPUs (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, PostgreSQL 15; the CLI ran as the ${mode}. 1-min load average ${load0.toFixed(2)} at the start, ${load1.toFixed(2)} at the end (the machine is shared with other work).`,
    '',
    `Set-up: ${CLUSTERS} PostgreSQL 15 instances (shared_buffers 16MB) on loopback; one \`warden serve --config warden.yaml\` with ${CLUSTERS} clusters, each its own filesystem repository, WAL streaming on, ${HEARTBEAT ? 'the per-second heartbeat on (defaults)' : 'the heartbeat writer **off** (`heartbeat: false`)'}, objects encrypted (the default, to a \`repo keygen\` identity). \`logical-dump\`, \`verification\` and \`drill\` schedules off; \`full-backup\`, \`backup\` and \`retention\` at their defaults, so each fresh repository caught up one full backup at start; measured after those finished, when no slot falls due for hours. ${HEARTBEAT ? '"idle": no traffic but Warden\'s own heartbeat (1 row/s per cluster, so every stream receives a little WAL each second)' : '"idle": no traffic at all (the streams exchange only keepalives)'}; "light": plus one INSERT per second per cluster from the bench process. RSS of the daemon process tree (VmRSS, sampled every second); CPU = utime+stime of the tree over the round, as % of one core.`,
    '',
    `Start-up: all ${CLUSTERS} streams \`streaming\` (GET /api/status, polled every second) ${streamingS!.toFixed(1)} s after the spawn; first full backups of all clusters done after ${backedUpS.toFixed(1)} s (${retried.size ? `${retried.size} attempts failed and were retried by the scheduler: ${[...new Set(retried.values())].join(', ')}` : 'no attempt failed'}); peak RSS over start-up and those backups (VmHWM) ${mib(startHwm)} MiB, median RSS sampled during start-up ${mib(median(startRss))} MiB.`,
    '',
    '| traffic | median RSS MiB | max RSS MiB | CPU % of one core, median (min–max) |',
    '|---|---:|---:|---:|',
    ...summary,
    '',
    '| round | traffic | median RSS MiB | max RSS MiB | CPU % of one core | CPU s | streaming after | load after |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ].join('\n');
  await writeFile(
    path.join(import.meta.dirname, 'reports', HEARTBEAT ? 'daemon-scale.md' : 'daemon-scale-no-heartbeat.md'),
    `${report}\n`,
  );
  console.log(report);
  // The daemon's own output, e.g. from a profiling preload given through NODE_OPTIONS.
  if (process.env.DAEMON_SCALE_SHOW_OUTPUT) console.error(output);
} finally {
  if (daemon) await stopDaemon(daemon);
  await Promise.all(clusters.map((c) => c.stop().catch(() => undefined)));
  await rm(work, { recursive: true, force: true });
}
