import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { readAsset } from '../../src/server/dashboard-assets.ts';
import { onExit } from '../harness/cleanup.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

// What an operator does: `npm pack` (as `npm publish` would), then `npm install -g` of the tarball
// into a prefix of its own, then run `warden` from a directory that is not the clone.
const root = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

let work: string;
let installed: string;
let warden: string;
let cluster: TestCluster;
let removeWork: (() => void) | undefined;

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function runInstalled(args: string[], cwd: string): Promise<Ran> {
  try {
    const { stdout, stderr } = await run(warden, args, {
      cwd,
      // Only the prefix's bin and node itself: nothing of the clone is reachable.
      env: { PATH: `${path.dirname(warden)}:${path.dirname(process.execPath)}:/usr/bin:/bin`, HOME: work },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: Number(failed.code ?? 1), stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'warden-pack-'));
  removeWork = onExit(() => rmSync(work, { recursive: true, force: true }));
  const npmEnv = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' };
  // `npm pack` builds dist/ first (the prepare script), as publishing does. It runs in a copy of
  // the package's sources, so the clone's dist/ (which other tests' CLI runs may be reading) is
  // not rewritten under them.
  const staging = path.join(work, 'staging');
  await mkdir(staging);
  for (const entry of [
    'package.json',
    'package-lock.json',
    'README.md',
    'tsconfig.json',
    'tsconfig.build.json',
    'bin',
    'dashboard',
    'src',
  ])
    await cp(path.join(root, entry), path.join(staging, entry), { recursive: true });
  await symlink(path.join(root, 'node_modules'), path.join(staging, 'node_modules'));
  const packed = await run('npm', ['pack', '--json', '--pack-destination', work], {
    cwd: staging,
    env: npmEnv,
    maxBuffer: 64 * 1024 * 1024,
  });
  const [manifest] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  assert.ok(manifest);
  const shipped = manifest.files.map((file) => file.path);
  assert.ok(shipped.includes('dist/cli/main.js'), 'the compiled CLI is in the tarball');
  for (const asset of ['index.html', 'dashboard.js', 'dom.js', 'charts.js', 'dashboard.css', 'favicon.svg'])
    assert.ok(shipped.includes(`dashboard/${asset}`), `the dashboard's ${asset} is in the tarball`);
  assert.deepEqual(
    shipped.filter((file) => file.startsWith('src/') || file.startsWith('test/')),
    [],
    'no TypeScript sources or tests are published',
  );
  const prefix = path.join(work, 'prefix');
  // The registry (or npm's cache) provides the dependencies, as for an operator.
  await run(
    'npm',
    [
      'install',
      '--global',
      '--prefix',
      prefix,
      '--prefer-offline',
      '--no-audit',
      path.join(work, manifest.filename),
    ],
    { cwd: work, env: npmEnv, maxBuffer: 64 * 1024 * 1024 },
  );
  installed = path.join(prefix, 'lib', 'node_modules', 'warden');
  warden = path.join(prefix, 'bin', 'warden');
  cluster = await startCluster();
});

after(async () => {
  await cluster?.stop();
  removeWork?.();
  if (work) await rm(work, { recursive: true, force: true });
});

test('the installed package runs compiled JavaScript with no TypeScript runtime', () => {
  assert.ok(existsSync(path.join(installed, 'dist', 'cli', 'main.js')));
  assert.equal(existsSync(path.join(installed, 'src')), false);
  assert.equal(
    existsSync(path.join(installed, 'node_modules', 'tsx')),
    false,
    'tsx is not a runtime dependency',
  );
  assert.equal(existsSync(path.join(installed, 'node_modules', 'typescript')), false);
});

test('the installed build finds the dashboard it serves in its own package', async () => {
  const assets = (await import(
    pathToFileURL(path.join(installed, 'dist', 'server', 'dashboard-assets.js')).href
  )) as { readAsset: typeof readAsset };
  const page = (await assets.readAsset('/')).toString('utf8');
  assert.match(page, /<script type="module" src="\/assets\/dashboard.js"><\/script>/);
  assert.ok((await assets.readAsset('/assets/dashboard.js')).length > 1000);
});

test('the globally installed warden prints its version and completion script', async () => {
  const cwd = path.join(work, 'elsewhere');
  await mkdir(cwd, { recursive: true });
  const version = await runInstalled(['--version'], cwd);
  assert.equal(version.code, 0, version.stderr);
  const manifest = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
  assert.equal(version.stdout.trim(), manifest.version);
  const completion = await runInstalled(['completion', 'bash'], cwd);
  assert.equal(completion.code, 0, completion.stderr);
  assert.match(completion.stdout, /complete -o default -F _warden warden/);
});

test('the globally installed warden backs a cluster up and lists the backup', async () => {
  const cwd = path.join(work, 'operator');
  await mkdir(cwd, { recursive: true });
  const repo = path.join(work, 'repo');
  const empty = await runInstalled(['backup', 'list', '--repo', repo, '--json'], cwd);
  assert.equal(empty.code, 4, 'an empty directory is no repository yet');
  const backup = await runInstalled(
    ['backup', '--db', `${cluster.url()}?sslmode=disable`, '--repo', repo, '--no-encryption', '--json'],
    cwd,
  );
  assert.equal(backup.code, 0, backup.stderr);
  const id = (JSON.parse(backup.stdout) as { backup: { id: string } }).backup.id;
  const list = await runInstalled(['backup', 'list', '--repo', repo, '--json'], cwd);
  assert.equal(list.code, 0, list.stderr);
  const listed = JSON.parse(list.stdout) as { backups: Array<{ id: string }> };
  assert.deepEqual(
    listed.backups.map((b) => b.id),
    [id],
  );
});
