import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isWardenError } from '../../src/errors.ts';
import { connectionFromEnv, connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { libpqEnv } from '../../src/postgres/client-tool.ts';
import { planTls } from '../../src/postgres/tls-policy.ts';
import { checkS3Endpoint } from '../../src/repository/s3/s3-endpoint-policy.ts';
import { isLoopbackHost } from '../../src/util/loopback.ts';

test('only literal loopback addresses, localhost and socket paths count as local', () => {
  for (const host of [
    '127.0.0.1',
    '127.1.2.3',
    'localhost',
    'LOCALHOST.',
    '::1',
    '[::1]',
    '0:0:0:0:0:0:0:1',
    '::ffff:127.0.0.1',
    '/var/run/postgresql',
  ]) {
    assert.equal(isLoopbackHost(host), true, host);
  }
  for (const host of [
    '128.0.0.1',
    '10.0.0.1',
    '192.0.2.2',
    '::2',
    '::ffff:10.0.0.1',
    'db.internal',
    'localhost.localdomain',
    '127.0.0.1.nip.io',
    'mylocalhost',
    '',
  ]) {
    assert.equal(isLoopbackHost(host), false, host);
  }
});

test('off loopback, prefer and require both mean verified TLS: a server that says "no TLS" is never used in plaintext', () => {
  for (const mode of ['prefer', 'require'] as const) {
    assert.deepEqual(planTls('db.internal', 5432, mode, undefined), { kind: 'tls', verifyHost: true });
    assert.deepEqual(planTls('10.1.2.3', 5432, mode, undefined), { kind: 'tls', verifyHost: true });
  }
});

test('on loopback, prefer keeps the probe (TLS when offered) and disable stays silent', () => {
  assert.deepEqual(planTls('127.0.0.1', 5432, 'prefer', undefined), { kind: 'probe' });
  assert.deepEqual(planTls('/tmp', 5432, 'prefer', undefined), { kind: 'plain' }, 'a Unix socket has no TLS');
  assert.deepEqual(planTls('localhost', 5432, 'disable', undefined), { kind: 'plain' });
  assert.deepEqual(planTls('::1', 5432, 'require', undefined), { kind: 'tls', verifyHost: true });
});

test('plaintext or an unverified host name off loopback is possible only explicitly, and warns', () => {
  const plain = planTls('db.internal', 5432, 'disable', undefined);
  assert.equal(plain.kind, 'plain');
  assert.equal('warning' in plain && plain.warning?.code, 'WARDEN_W_TLS_DISABLED');
  const verifyCa = planTls('db.internal', 5432, 'verify-ca', '/etc/ca.pem');
  assert.deepEqual(verifyCa.kind === 'tls' && verifyCa.verifyHost, false);
  assert.equal('warning' in verifyCa && verifyCa.warning?.code, 'WARDEN_W_TLS_HOST_UNVERIFIED');
});

test('a configured CA implies verified TLS, on loopback too, and contradicts disable', () => {
  assert.deepEqual(planTls('127.0.0.1', 5432, 'prefer', '/etc/ca.pem'), { kind: 'tls', verifyHost: true });
  assert.throws(
    () => planTls('db.internal', 5432, 'disable', '/etc/ca.pem', 'cluster.tls'),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_CONFIG_INVALID') && error.details.field === 'cluster.tls',
  );
});

test('an http:// S3 endpoint off loopback is refused unless allowed explicitly', async () => {
  checkS3Endpoint('http://127.0.0.1:9000', false, 'repository.s3.endpoint');
  checkS3Endpoint('https://minio.internal:9000', false, 'repository.s3.endpoint');
  assert.throws(
    () => checkS3Endpoint('http://minio.internal:9000', false, 'repository.s3.endpoint'),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_CONFIG_INVALID') && error.details.field === 'repository.s3.endpoint',
  );
  const warnings: string[] = [];
  const onWarning = (warning: Error & { code?: string }) => warnings.push(warning.code ?? '');
  process.on('warning', onWarning);
  try {
    checkS3Endpoint('http://minio.internal:9000', true, 'repository.s3.endpoint');
    checkS3Endpoint('http://minio.internal:9000', true, 'repository.s3.endpoint');
  } finally {
    // emitWarning delivers on the next tick
    await new Promise((resolve) => setImmediate(resolve));
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings, ['WARDEN_W_TLS_DISABLED'], 'warned once for the host');
});

test('a multi-host URL or PGHOST names a cluster: every host is kept, none half-used', () => {
  // Connections then go to the member that fits (cluster-locator.ts), not to the first host.
  for (const config of [
    connectionFromUrl('postgres://warden@db1,db2/app', '--db'),
    connectionFromEnv({ PGHOST: 'db1,db2' })!,
  ]) {
    assert.deepEqual(config.hosts, [
      { host: 'db1', port: 5432 },
      { host: 'db2', port: 5432 },
    ]);
  }
  assert.throws(
    () => connectionFromEnv({ PGHOST: 'db1,db2,db3', PGPORT: '5432,5433' }),
    (error: unknown) => isWardenError(error, 'WARDEN_E_CONFIG_INVALID'),
  );
  assert.equal(connectionFromUrl('postgres://warden@[::1]:5433/app').host, '::1');
});

test('pg_dump and pg_restore get the same TLS decision as libpq settings', async () => {
  const remote = connectionFromUrl('postgres://warden:pw@db.internal/app');
  const env = async (query: string, major = 16) =>
    libpqEnv(connectionFromUrl(`postgres://warden:pw@db.internal/app${query}`), {}, major);
  assert.equal((await libpqEnv(remote, {}, 16)).PGSSLMODE, 'verify-full');
  assert.equal((await libpqEnv(remote, {}, 16)).PGSSLROOTCERT, 'system');
  assert.equal((await libpqEnv(remote, {}, 15)).PGSSLROOTCERT, undefined);
  assert.equal((await env('?sslmode=prefer')).PGSSLMODE, 'verify-full');
  assert.equal((await env('?sslrootcert=/etc/ca.pem')).PGSSLROOTCERT, '/etc/ca.pem');
  assert.equal((await env('?sslmode=verify-ca&sslrootcert=/etc/ca.pem')).PGSSLMODE, 'verify-ca');
  assert.equal((await env('?sslmode=disable')).PGSSLMODE, 'disable');
  const local = await libpqEnv(connectionFromUrl('postgres://warden:pw@127.0.0.1/app'), {}, 16);
  assert.equal(local.PGSSLMODE, 'prefer');
  assert.equal(local.PGPASSWORD, 'pw');
});
