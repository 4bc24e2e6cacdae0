import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { isWardenError } from '../../src/errors.ts';
import { openObjectStore } from '../../src/repository/open-object-store.ts';
import { tempDir } from '../harness/temp-dir.ts';

async function dirWith(yaml: string): Promise<string> {
  const dir = await tempDir('s3-config');
  await writeFile(path.join(dir, 'warden.yaml'), yaml);
  return dir;
}

test('--repo s3://bucket/prefix takes endpoint and region from the AWS environment', async () => {
  const cwd = await dirWith('');
  const config = loadConfig({
    flags: { repo: 's3://backups/prod/db1/' },
    env: {
      AWS_ENDPOINT_URL: 'http://127.0.0.1:9000',
      AWS_REGION: 'eu-west-1',
      AWS_SECRET_ACCESS_KEY: 'hush',
    },
    cwd,
  });
  assert.deepEqual(config.repository.s3, {
    bucket: 'backups',
    prefix: 'prod/db1',
    region: 'eu-west-1',
    endpoint: 'http://127.0.0.1:9000',
    forcePathStyle: true,
  });
  assert.equal(config.repository.path, 's3://backups/prod/db1');
  assert.equal((await openObjectStore(config.repository)).location, 's3://backups/prod/db1');
  assert.ok(!JSON.stringify(config).includes('hush'), 'env secrets are left to the SDK, never copied');
});

test('a repository.s3 section names the repository; its location never shows the keys', async () => {
  const cwd = await dirWith(
    'repository:\n  s3:\n    bucket: backups\n    prefix: db1\n    endpoint: https://minio.internal:9000\n    accessKeyId: AKIA1\n    secretAccessKey: s3cr3t\n',
  );
  const config = loadConfig({ flags: {}, env: {}, cwd });
  assert.equal(config.repository.s3?.bucket, 'backups');
  assert.equal(config.repository.s3?.forcePathStyle, true);
  assert.deepEqual(config.repository.s3?.credentials, { accessKeyId: 'AKIA1', secretAccessKey: 's3cr3t' });
  assert.equal(config.repository.path, 's3://backups/db1');
  assert.ok(!(await openObjectStore(config.repository)).location.includes('s3cr3t'));
});

test('config errors name the repository.s3 field', async () => {
  const missingBucket = await dirWith('repository:\n  s3:\n    prefix: db1\n');
  assert.throws(
    () => loadConfig({ flags: {}, env: {}, cwd: missingBucket }),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_CONFIG_INVALID') && error.details.field === 'repository.s3.bucket',
  );
  const halfKey = await dirWith('repository:\n  s3:\n    bucket: b1b\n    accessKeyId: AKIA1\n');
  assert.throws(
    () => loadConfig({ flags: {}, env: {}, cwd: halfKey }),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_CONFIG_INVALID') &&
      error.details.field === 'repository.s3.secretAccessKey',
  );
  assert.throws(
    () => loadConfig({ flags: { repo: 's3://' }, env: {}, cwd: halfKey }),
    (error: unknown) => isWardenError(error, 'WARDEN_E_CONFIG_INVALID'),
  );
});

test('a plaintext S3 endpoint off loopback needs allowHttp (file) or WARDEN_S3_ALLOW_HTTP=1 (environment)', async (t) => {
  const cwd = await tempDir('s3-http');
  t.after(() => rm(cwd, { recursive: true, force: true }));
  const yaml = (extra: string) =>
    writeFile(
      path.join(cwd, 'warden.yaml'),
      `repository:\n  s3:\n    bucket: backups\n    endpoint: http://minio.internal:9000\n${extra}`,
    );
  await yaml('');
  assert.throws(
    () => loadConfig({ flags: {}, env: {}, cwd }),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_CONFIG_INVALID') && error.details.field === 'repository.s3.endpoint',
  );
  await yaml('    allowHttp: true\n    tlsCa: certs/ca.pem\n');
  const allowed = loadConfig({ flags: {}, env: {}, cwd });
  assert.equal(allowed.repository.s3?.allowHttp, true);
  assert.equal(allowed.repository.s3?.tlsCa, path.join(cwd, 'certs/ca.pem'));
  const fromEnv = { AWS_ENDPOINT_URL: 'http://10.0.0.5:9000' };
  await writeFile(path.join(cwd, 'warden.yaml'), '');
  assert.throws(
    () => loadConfig({ flags: { repo: 's3://backups/x' }, env: fromEnv, cwd }),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_CONFIG_INVALID') && error.details.field === 'AWS_ENDPOINT_URL',
  );
  const envAllowed = loadConfig({
    flags: { repo: 's3://backups/x' },
    env: { ...fromEnv, WARDEN_S3_ALLOW_HTTP: '1' },
    cwd,
  });
  assert.equal(envAllowed.repository.s3?.endpoint, 'http://10.0.0.5:9000');
});
