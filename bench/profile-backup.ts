/**
 * Where `warden backup` spends its time (issue 17, target 1, first step): the compiled CLI of
 * HEAD under `node --cpu-prof` (one profile per thread: main and zstd workers) against a
 * `pgbench -i -s <scale>` cluster. Writes bench/reports/backup-profile.md.
 *
 *   node --import tsx bench/profile-backup.ts [--scale 20]
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startCluster } from '../test/harness/postgres.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
};
const SCALE = arg('scale', 20);
const ROOT = path.resolve(import.meta.dirname, '..');
const PGBIN = '/usr/lib/postgresql/15/bin';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function area(node: ProfileNode): string {
  const { functionName: fn, url } = node.callFrame;
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'garbage collector';
  if (fn === '(program)') return '(program: native, outside JS)';
  if (url.includes('/src/') || url.includes('/dist/')) {
    const file = url.split(/\/(?:src|dist)\//)[1] ?? url;
    return `warden ${file.replace(/\.js$/, '')}`;
  }
  if (url.includes('node_modules/')) return `node_modules/${url.split('node_modules/')[1]?.split('/')[0]}`;
  if (url.startsWith('node:')) return `node core ${url.slice(5).split('/')[0]}`;
  if (!url) return `native ${fn || '(anonymous)'}`;
  return 'worker source (eval)';
}

/** Sampled ms per area and per function (self time), from the sample intervals. */
function summarize(profile: Profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const areas = new Map<string, number>();
  const functions = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const node = byId.get(id)!;
    areas.set(area(node), (areas.get(area(node)) ?? 0) + ms);
    const url = node.callFrame.url.replace(/^file:\/\//, '').replace(/.*\/(src|dist)\//, '$1/');
    const name = `${node.callFrame.functionName || '(anonymous)'}${url ? ` ${url}:${node.callFrame.lineNumber + 1}` : ''}`;
    functions.set(name, (functions.get(name) ?? 0) + ms);
  });
  const totalMs = (profile.endTime - profile.startTime) / 1000;
  const busyMs = totalMs - (areas.get('idle') ?? 0);
  return { totalMs, busyMs, areas, functions };
}

const load0 = os.loadavg()[0]!;
// Under bench/results/ (ignored by git), so the compiled build resolves the repository's node_modules.
const work = path.join(ROOT, 'bench', 'results', `profile-backup-${process.pid}`);
const cluster = await startCluster({ settings: { shared_buffers: '128MB' } });
try {
  await mkdir(work, { recursive: true });
  // The CLI as shipped, compiled from HEAD (tracked files only).
  const tree = path.join(work, 'tree');
  const dist = path.join(work, 'dist');
  await mkdir(tree);
  execFileSync(
    'sh',
    ['-c', `git archive HEAD src package.json tsconfig.json tsconfig.build.json | tar -x -C "${tree}"`],
    {
      cwd: ROOT,
    },
  );
  try {
    execFileSync(path.join(ROOT, 'node_modules/.bin/tsc'), [
      '-p',
      path.join(tree, 'tsconfig.build.json'),
      '--outDir',
      dist,
    ]);
  } catch {
    // emits despite type errors elsewhere; the entry is checked below
  }
  // The CLI reads its version from ../../package.json of dist/cli.
  await writeFile(path.join(work, 'package.json'), await readFile(path.join(tree, 'package.json')));
  await writeFile(
    path.join(dist, 'warden.mjs'),
    "import { main } from './cli/main.js';\nawait main(process.argv);\n",
  );
  const pgEnv = {
    ...process.env,
    PGHOST: '127.0.0.1',
    PGPORT: String(cluster.port),
    PGUSER: 'postgres',
    PGPASSWORD: cluster.password,
  };
  execFileSync(`${PGBIN}/pgbench`, ['-i', '-q', '-s', String(SCALE), 'postgres'], {
    env: pgEnv,
    stdio: 'ignore',
  });
  await cluster.query('CHECKPOINT');
  const [size] = await cluster.query<{ mb: number }>(
    "SELECT (pg_database_size('postgres') / 1e6)::float8 AS mb",
  );
  const profDir = path.join(work, 'prof');
  const started = performance.now();
  const out = execFileSync(
    'node',
    [
      '--cpu-prof',
      `--cpu-prof-dir=${profDir}`,
      path.join(dist, 'warden.mjs'),
      'backup',
      '--db',
      `postgres://postgres@127.0.0.1:${cluster.port}/postgres?sslmode=disable`,
      '--repo',
      path.join(work, 'repo'),
      '--slot',
      'profile',
      '--compression',
      'zstd',
      '--no-encryption',
      '--json',
    ],
    // The password through the environment, never the command line; the signing key the first
    // backup creates goes into the scratch directory (cwd), not the repository checkout.
    { maxBuffer: 1 << 26, cwd: work, env: { ...process.env, PGPASSWORD: cluster.password } },
  ).toString();
  const wallS = (performance.now() - started) / 1000;
  const report = JSON.parse(out) as { steps: Array<{ name: string; durationMs: number }> };
  const sections: string[] = [];
  const files = (await readdir(profDir)).filter((f) => f.endsWith('.cpuprofile'));
  const profiles = await Promise.all(
    files.map(async (f) => summarize(JSON.parse(await readFile(path.join(profDir, f), 'utf8')) as Profile)),
  );
  // The main thread is the one that ran Warden's own modules the longest.
  profiles.sort((a, b) => {
    const own = (p: typeof a) =>
      [...p.areas].filter(([k]) => k.startsWith('warden ')).reduce((n, [, v]) => n + v, 0);
    return own(b) - own(a);
  });
  profiles.forEach((p, i) => {
    const title = i === 0 ? 'main thread' : `thread ${i} (a zstd/age pool worker)`;
    const areas = [...p.areas]
      .filter(([k]) => k !== 'idle')
      .sort((a, b) => b[1] - a[1])
      .slice(0, i === 0 ? 14 : 5);
    const fns = [...p.functions]
      .filter(([k]) => !k.startsWith('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, i === 0 ? 12 : 4);
    sections.push(
      [
        `### ${title}: busy ${(p.busyMs / 1000).toFixed(2)} s of ${(p.totalMs / 1000).toFixed(2)} s profiled`,
        '',
        '| where (self time) | ms | share of busy |',
        '|---|---:|---:|',
        ...areas.map(([k, v]) => `| ${k} | ${v.toFixed(0)} | ${((100 * v) / p.busyMs).toFixed(1)} % |`),
        '',
        '| top functions (self) | ms |',
        '|---|---:|',
        ...fns.map(([k, v]) => `| \`${k.replace(/\|/g, '\\|')}\` | ${v.toFixed(0)} |`),
      ].join('\n'),
    );
  });
  const md = [
    '## Where `warden backup` spends its time (`bench/profile-backup.ts`, issue 17 target 1)',
    '',
    `\`node --import tsx bench/profile-backup.ts --scale ${SCALE}\` on ${new Date().toISOString()}: the compiled CLI of HEAD, \`warden backup --compression zstd --no-encryption\` under \`node --cpu-prof\` against \`pgbench -i -s ${SCALE}\` (${size!.mb.toFixed(0)} MB database). Wall ${wallS.toFixed(2)} s including node start-up. 1-min load average ${load0.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end (2 vCPUs, shared): wall times are inflated by the load, shares within a thread much less so. Sampled time is wall time while the thread was on a JS or native frame; "idle" (waiting for the socket, disk or workers) is left out of "busy".`,
    '',
    `Steps (ms): ${report.steps.map((s) => `${s.name} ${s.durationMs.toFixed(0)}`).join(', ')}.`,
    '',
    ...sections.flatMap((s) => [s, '']),
  ].join('\n');
  await writeFile(path.join(ROOT, 'bench', 'reports', 'backup-profile.md'), md);
  console.log(md);
} finally {
  await cluster.stop();
  await rm(work, { recursive: true, force: true });
}
