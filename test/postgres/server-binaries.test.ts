import assert from 'node:assert/strict';
import { mkdtemp, rm, chown } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { serverRunAs } from '../../src/postgres/os-user.ts';
import { findServerBinaries } from '../../src/postgres/server-binaries.ts';
import { freePort } from '../../src/util/free-port.ts';

test('server binaries shipped in the npm package run a cluster where none are installed', async () => {
  const binaries = await findServerBinaries({ WARDEN_PG_BINARIES: 'npm' });
  assert.equal(binaries.source, 'npm');
  assert.ok(binaries.major >= 17);
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'warden-npm-pg-'));
  const runAs = serverRunAs();
  if (runAs) await chown(workDir, runAs.uid, runAs.gid);
  const instance = new LocalInstance({
    binaries,
    dataDir: path.join(workDir, 'data'),
    port: await freePort(),
    runAs,
  });
  try {
    await instance.init({
      superuser: 'postgres',
      password: 'secret-for-test',
      hbaLines: ['host all all 127.0.0.1/32 scram-sha-256'],
    });
    await instance.start();
    const client = new pg.Client({
      host: '127.0.0.1',
      port: instance.port,
      user: 'postgres',
      password: 'secret-for-test',
    });
    await client.connect();
    const { rows } = await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    await client.end();
    assert.ok(Number(rows[0]!.v) >= 170000);
  } finally {
    await instance.stop({ mode: 'immediate' });
    await rm(workDir, { recursive: true, force: true });
  }
});
