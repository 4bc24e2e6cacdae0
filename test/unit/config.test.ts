import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { isWardenError } from '../../src/errors.ts';
import { tempDir } from '../harness/temp-dir.ts';

async function dirWith(yaml: string): Promise<string> {
  const dir = await tempDir('config');
  await writeFile(path.join(dir, 'warden.yaml'), yaml);
  return dir;
}

test('an invalid config value is refused with the field path', async () => {
  const cwd = await dirWith('repository:\n  compression: lzma\n');
  assert.throws(
    () => loadConfig({ flags: {}, env: {}, cwd }),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_CONFIG_INVALID') && error.details.field === 'repository.compression',
  );
});

test('unknown keys are refused rather than ignored', async () => {
  const cwd = await dirWith('cluster:\n  hots: db1\n');
  assert.throws(
    () => loadConfig({ flags: {}, env: {}, cwd }),
    (error: unknown) => isWardenError(error, 'WARDEN_E_CONFIG_INVALID'),
  );
});

test('precedence is flag > environment > config file > default', async () => {
  const cwd = await dirWith(
    'cluster:\n  url: postgres://file@db-file:5432/app\nrepository:\n  path: /srv/file-repo\n  compression: gzip\n',
  );
  const fromFile = loadConfig({ flags: {}, env: {}, cwd });
  assert.equal(fromFile.cluster?.host, 'db-file');
  assert.equal(fromFile.repository.path, '/srv/file-repo');
  assert.equal(fromFile.repository.compression, 'gzip');
  const fromEnv = loadConfig({
    flags: {},
    env: { WARDEN_DB: 'postgres://env@db-env/app', WARDEN_REPO: '/srv/env-repo' },
    cwd,
  });
  assert.equal(fromEnv.cluster?.host, 'db-env');
  assert.equal(fromEnv.repository.path, '/srv/env-repo');
  const fromFlags = loadConfig({
    flags: { db: 'postgres://flag@db-flag/app', compression: 'none' },
    env: { WARDEN_DB: 'postgres://env@db-env/app' },
    cwd,
  });
  assert.equal(fromFlags.cluster?.host, 'db-flag');
  assert.equal(fromFlags.repository.compression, 'none');
  assert.equal(fromFlags.sources.cluster, 'flag');
  assert.ok(Object.isFrozen(fromFlags));
});

test('TLS defaults to prefer and the standard PG variables name a cluster', async () => {
  const cwd = await tempDir('config');
  const config = loadConfig({
    flags: {},
    env: { PGHOST: 'db-pg', PGUSER: 'backup', PGPASSWORD: 's3cret' },
    cwd,
  });
  assert.equal(config.cluster?.host, 'db-pg');
  assert.equal(config.cluster?.tls, 'prefer');
  assert.equal(config.repository.compression, 'zstd');
});
