import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const appRoot = fileURLToPath(new URL('../../', import.meta.url));

/**
 * A module hook that makes prom-client unresolvable (as in a service that never installed it)
 * and records every file that loads. Registered before tsx so it sees every import, ours first.
 */
const HOOK = `
const loaded = [];
export async function resolve(specifier, context, next) {
  if (specifier === 'prom-client' || specifier.startsWith('prom-client/')) {
    const error = new Error("Cannot find package 'prom-client'");
    error.code = 'ERR_MODULE_NOT_FOUND';
    throw error;
  }
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (url.includes('/node_modules/prom-client/')) throw new Error('prom-client loaded: ' + url);
  return next(url, context);
}
`;

/** Imports every entry point, builds each component without `metrics`, reports CommonJS files loaded. */
const SERVICE = `
import { createRequire } from 'node:module';
const entries = ['index', 'db/index', 'cache/index', 'sessions/index', 'ratelimit/index', 'redis/index'];
const mods = {};
for (const entry of entries) mods[entry] = await import('./src/' + entry + '.ts');
const redis = mods['redis/index'].createRedis({ port: 1 });
const db = mods['db/index'].createDatabase({ primary: 'postgres://u@127.0.0.1:1/db' });
new mods['cache/index'].Cache({ redis });
new mods['sessions/index'].SessionStore({ redis });
new mods['ratelimit/index'].RateLimiter({ redis, limit: 1, windowMs: 1000 });
await db.close();
const require = createRequire(import.meta.url);
const cjs = Object.keys(require.cache).filter((file) => file.includes('/node_modules/prom-client/'));
process.stdout.write(JSON.stringify({ ok: true, promClientFiles: cjs }));
`;

test('the library imports and builds every component without prom-client (it cannot even be resolved)', async () => {
  const hook = `data:text/javascript,${encodeURIComponent(HOOK)}`;
  const register = `data:text/javascript,${encodeURIComponent(
    `import { register } from 'node:module'; register(${JSON.stringify(hook)});`,
  )}`;
  const { stdout } = await run(
    process.execPath,
    ['--import', register, '--import', 'tsx', '--input-type=module', '-e', SERVICE],
    { cwd: appRoot },
  );
  assert.deepEqual(JSON.parse(stdout), { ok: true, promClientFiles: [] });
});

test('the hook does refuse prom-client: a service that imports it fails under the same hook', async () => {
  const hook = `data:text/javascript,${encodeURIComponent(HOOK)}`;
  const register = `data:text/javascript,${encodeURIComponent(
    `import { register } from 'node:module'; register(${JSON.stringify(hook)});`,
  )}`;
  await assert.rejects(
    run(
      process.execPath,
      ['--import', register, '--input-type=module', '-e', "await import('prom-client');"],
      {
        cwd: appRoot,
      },
    ),
    /Cannot find package 'prom-client'/,
  );
});
