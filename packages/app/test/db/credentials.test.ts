import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../src/db/config.ts';
import { credentialsFromFile, withCredentials } from '../../src/db/credentials.ts';
import type { ConnectOptions, DbConnection, HostTarget } from '../../src/db/driver.ts';
import { isDataLayerError } from '../../src/errors.ts';
import { tempDir } from '../../../../test/harness/temp-dir.ts';

const HOST = resolveConfig({ primary: 'postgres://static:old@127.0.0.1:5432/app' }).initialPrimary!;
const OPTIONS: ConnectOptions = {
  connectTimeoutMs: 1000,
  keepAlive: true,
  keepAliveInitialDelayMs: 1000,
  applicationName: 't',
};

/** A connector that records the target it was asked to open (fault injection: no server needed). */
function recorder(): { seen: HostTarget[]; connect: (host: HostTarget) => Promise<DbConnection> } {
  const seen: HostTarget[] = [];
  return { seen, connect: (host) => (seen.push(host), Promise.resolve({} as DbConnection)) };
}

test('each connection takes user and password from the provider, asked again every time', async () => {
  const { seen, connect } = recorder();
  let call = 0;
  const open = withCredentials(connect, () => {
    call += 1;
    return Promise.resolve({ user: `app_${call}`, password: `secret-${call}` });
  });
  await open(HOST, OPTIONS);
  await open(HOST, OPTIONS);
  assert.deepEqual(
    seen.map((h) => [h.user, h.password, h.key]),
    [
      ['app_1', 'secret-1', '127.0.0.1:5432'],
      ['app_2', 'secret-2', '127.0.0.1:5432'],
    ],
  );
});

test('a provider that throws or answers nonsense fails the connection with WARDEN_E_SECRET_UNAVAILABLE', async () => {
  const { seen, connect } = recorder();
  for (const provider of [
    () => Promise.reject(new Error('vault down')),
    () => Promise.resolve({ user: 'app' } as unknown as { user: string; password: string }),
    () => Promise.resolve({ user: '', password: 'x' }),
  ]) {
    await assert.rejects(withCredentials(connect, provider)(HOST, OPTIONS), (error) =>
      isDataLayerError(error, 'WARDEN_E_SECRET_UNAVAILABLE'),
    );
  }
  assert.equal(seen.length, 0);
  assert.throws(
    () => resolveConfig({ primary: 'postgres://h/db', credentials: 'user:pw' as never }),
    (error) => isDataLayerError(error, 'WARDEN_E_CONFIG_INVALID'),
  );
});

test('credentialsFromFile reads the rotation JSON on every call and refuses anything else', async () => {
  const dir = await tempDir('creds-file');
  const file = path.join(dir, 'db.json');
  const provider = credentialsFromFile(file);
  await assert.rejects(provider(), (error) => isDataLayerError(error, 'WARDEN_E_SECRET_UNAVAILABLE'));
  await writeFile(file, '{"user":"app_a","password":"one"}\n');
  assert.deepEqual(await provider(), { user: 'app_a', password: 'one' });
  await writeFile(file, '{"user":"app_b","password":"two"}\n');
  assert.deepEqual(await provider(), { user: 'app_b', password: 'two' });
  for (const hostile of ['not json', '[]', '{"user":"app_b","password":7}', 'null']) {
    await writeFile(file, hostile);
    await assert.rejects(provider(), (error) => isDataLayerError(error, 'WARDEN_E_SECRET_UNAVAILABLE'));
  }
});
