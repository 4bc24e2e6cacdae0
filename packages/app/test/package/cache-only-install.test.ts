import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));

interface ImportCost {
  specifier: string;
  modulesLoaded?: number;
  packagesLoaded?: string[];
  failed?: boolean;
  missingPackage?: string;
}

interface Footprint {
  project: string;
  packages: number;
  installed: string[];
  forbidden: { name: string; why: string }[];
  imports: ImportCost[];
}

/**
 * The published library as a service installs it: `npm pack` the workspace package, install the
 * tarball into an empty project (from npm's cache only: no network), import entry points there.
 */
describe('a service that installs @warden/app', () => {
  let dir: string;
  let footprint: Footprint;
  const cost = (specifier: string): ImportCost => {
    const found = footprint.imports.find((entry) => entry.specifier === specifier);
    assert.ok(found, `measured ${specifier}`);
    return found;
  };

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'warden-app-pack-'));
    await run('npm', ['pack', '--workspace', '@warden/app', '--pack-destination', dir, '--loglevel=error'], {
      cwd: repoRoot,
    });
    const [tarball] = (await readdir(dir)).filter((name) => name.endsWith('.tgz'));
    assert.ok(tarball, 'npm pack wrote a tarball');
    const { stdout } = await run(
      process.execPath,
      [
        path.join(repoRoot, 'scripts/service-footprint.mjs'),
        '--offline',
        '--keep',
        '--tarball',
        path.join(dir, tarball),
        '--import',
        '@warden/app/cache',
        '--import',
        '@warden/app/sessions',
        '--import',
        '@warden/app/sessions/express',
      ],
      { maxBuffer: 16 * 1024 * 1024 },
    );
    footprint = JSON.parse(stdout) as Footprint;
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    if (footprint?.project) await rm(footprint.project, { recursive: true, force: true });
  });

  test('installs its three dependencies and none of the backup tool (no AWS SDK, native addon or TypeScript runtime)', () => {
    for (const name of ['ioredis', 'pg', 'zod']) assert.ok(footprint.installed.includes(name), name);
    assert.deepEqual(footprint.forbidden, []);
    for (const name of [
      'warden',
      'pino',
      'tsx',
      'esbuild',
      'zstd-napi',
      'commander',
      'express-session',
      'prom-client',
    ]) {
      assert.ok(!footprint.installed.includes(name), `${name} is not installed`);
    }
  });

  test('importing the cache loads ioredis and nothing of PostgreSQL, validation or logging', () => {
    const cache = cost('@warden/app/cache');
    assert.equal(cache.failed, undefined);
    assert.ok(cache.packagesLoaded?.includes('ioredis'));
    for (const name of ['pg', 'zod', 'pino'])
      assert.ok(!cache.packagesLoaded?.includes(name), `${name} not loaded`);
  });

  test('express-session is loaded by the express entry point only', () => {
    const sessions = cost('@warden/app/sessions');
    assert.equal(sessions.failed, undefined, 'the framework-neutral store works without express-session');
    assert.ok(!sessions.packagesLoaded?.includes('express-session'));
    const express = cost('@warden/app/sessions/express');
    assert.equal(express.failed, true);
    assert.equal(express.missingPackage, 'express-session');
  });

  test('a TypeScript service compiles against the published types (exports → dist/*.d.ts)', async () => {
    const consumer = path.join(footprint.project, 'service.ts');
    await writeFile(
      consumer,
      [
        "import { Cache } from '@warden/app/cache';",
        "import { createRedis } from '@warden/app/redis';",
        "import { SessionStore } from '@warden/app/sessions';",
        "import { isDataLayerError, type DataErrorCode, type Logger, type MetricsOptions } from '@warden/app';",
        'const logger: Logger = console;',
        'const redis = createRedis({ host: "127.0.0.1", port: 6379 });',
        'export const cache = new Cache({ redis, logger });',
        'export const sessions = new SessionStore({ redis, encryption: true });',
        '// the metrics option type-checks without prom-client installed (a registry-shaped object here)',
        'const registry = { registerMetric() {}, getSingleMetric: () => undefined, removeSingleMetric() {} };',
        "export const metrics: MetricsOptions = { registry, name: 'svc' };",
        'export const code: DataErrorCode = "WARDEN_E_CACHE_UNAVAILABLE";',
        'export const unavailable = (e: unknown): boolean => isDataLayerError(e, code) && e.retryable;',
        '',
      ].join('\n'),
    );
    const tsc = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
    const args = [
      '--noEmit',
      '--strict',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--target',
      'es2022',
    ];
    const types = [
      '--typeRoots',
      path.join(repoRoot, 'node_modules/@types'),
      '--types',
      'node',
      '--skipLibCheck',
    ];
    await run(process.execPath, [tsc, ...args, ...types, consumer], { cwd: footprint.project });
    // and a wrong use is caught: the types are real, not `any`
    await writeFile(
      consumer,
      "import { Cache } from '@warden/app/cache';\nexport const c = new Cache({ redis: 42 });\n",
    );
    await assert.rejects(
      run(process.execPath, [tsc, ...args, ...types, consumer], { cwd: footprint.project }),
    );
  });
});
