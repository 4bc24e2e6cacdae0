import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type pg from 'pg';
import { resolveConfig } from '../../packages/app/src/db/config.ts';
import { isDataLayerError } from '../../packages/app/src/errors.ts';
import { pgConnector, type HostTarget } from '../../packages/app/src/db/driver.ts';
import { connectError } from '../../packages/app/src/db/failure.ts';
import { connect } from '../../src/postgres/connect.ts';
import { connectionFromUrl, type ConnectionConfig } from '../../src/postgres/connection-config.ts';
import { runWarden } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { makeCertificates, nonLoopbackAddress, type TestCertificates } from '../harness/tls.ts';
import { rejectsWithCode } from '../faults/helpers.ts';

/**
 * A man in the middle that answers "no TLS" (a TCP proxy replying 'N' to SSLRequest) on an
 * address of this machine that is not loopback, so Warden treats the server as remote. The real
 * server offers TLS with a certificate from a private CA, for 127.0.0.1, localhost and this
 * machine's IPv4 address.
 */

const ipv4 = nonLoopbackAddress('IPv4');
const ipv6 = nonLoopbackAddress('IPv6');
const skip = ipv4 ? false : 'this machine has no non-loopback IPv4 address to put the proxy on';
const PASSWORD = 'tls-test-pw-5281';

let cluster: TestCluster;
let certs: TestCertificates;
let stripping: TcpProxy;
let transparent: TcpProxy;
let work: string;
const proxies: TcpProxy[] = [];

before(async () => {
  if (skip) return;
  certs = await makeCertificates([`IP:${ipv4}`, 'IP:127.0.0.1', 'DNS:localhost']);
  cluster = await startCluster({
    settings: { ssl: 'on', ssl_cert_file: certs.certFile, ssl_key_file: certs.keyFile },
  });
  await cluster.query(`CREATE ROLE warden LOGIN REPLICATION PASSWORD '${PASSWORD}'`);
  const upstream = { host: '127.0.0.1', port: cluster.port };
  stripping = await startTcpProxy({ host: ipv4!, upstream, mode: 'strip-tls' });
  transparent = await startTcpProxy({ host: ipv4!, upstream, mode: 'transparent' });
  proxies.push(stripping, transparent);
  work = await mkdtemp(path.join(os.tmpdir(), 'warden-tls-work-'));
  await writeFile(path.join(work, 'pw'), `${PASSWORD}\n`, { mode: 0o600 });
});
after(async () => {
  for (const proxy of proxies) await proxy.close();
  await cluster?.stop();
  if (certs) await rm(certs.dir, { recursive: true, force: true });
  if (work) await rm(work, { recursive: true, force: true });
});

function via(proxy: TcpProxy, query = ''): ConnectionConfig {
  const host = proxy.host.includes(':') ? `[${proxy.host}]` : proxy.host;
  return connectionFromUrl(`postgres://warden:${PASSWORD}@${host}:${proxy.port}/postgres${query}`);
}

async function sslInUse(client: pg.Client): Promise<boolean> {
  const { rows } = await client.query<{ ssl: boolean }>(
    'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
  );
  return rows[0]!.ssl;
}

/** Collects the codes of the process warnings emitted while `fn` runs. */
async function warningsDuring(fn: () => Promise<void>): Promise<string[]> {
  const codes: string[] = [];
  const listener = (warning: Error & { code?: string }) => codes.push(warning.code ?? warning.name);
  process.on('warning', listener);
  try {
    await fn();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', listener);
  }
  return codes;
}

test(
  'a proxy answering "no TLS" is refused by default (prefer) and with require, SQL and replication, before any credentials pass',
  { skip },
  async () => {
    const before = stripping.forwarded;
    for (const query of [
      '',
      '?sslmode=prefer',
      '?sslmode=allow',
      '?sslmode=require',
      '?sslmode=verify-full',
    ]) {
      await rejectsWithCode(connect(via(stripping, query)), 'WARDEN_E_TLS_UNAVAILABLE');
      await rejectsWithCode(
        connect(via(stripping, query), { replication: true }),
        'WARDEN_E_TLS_UNAVAILABLE',
      );
    }
    assert.ok(stripping.stripped >= 10, 'the proxy did answer "N"');
    assert.equal(stripping.forwarded, before, 'nothing reached the server through the stripping proxy');
  },
);

test(
  'only the explicit opt-down (sslmode=disable) goes through it, in plaintext, with one warning for the host',
  { skip },
  async () => {
    const codes = await warningsDuring(async () => {
      for (let i = 0; i < 2; i++) {
        const client = await connect(via(stripping, '?sslmode=disable'));
        try {
          assert.equal(await sslInUse(client), false);
        } finally {
          await client.end();
        }
      }
    });
    assert.deepEqual(codes, ['WARDEN_W_TLS_DISABLED']);
  },
);

test(
  'off loopback the certificate is verified: trusted with the configured CA, refused without it',
  { skip },
  async () => {
    await rejectsWithCode(connect(via(transparent)), 'WARDEN_E_TLS_UNAVAILABLE');
    const client = await connect(via(transparent, `?sslrootcert=${encodeURIComponent(certs.caFile)}`));
    try {
      assert.equal(await sslInUse(client), true);
    } finally {
      await client.end();
    }
  },
);

test(
  'the host name is verified too: a certificate for other names is refused, unless verify-ca (which warns)',
  { skip: skip || (ipv6 ? false : 'no non-loopback IPv6 address') },
  async () => {
    const v6 = await startTcpProxy({
      host: ipv6!,
      upstream: { host: '127.0.0.1', port: cluster.port },
      mode: 'transparent',
    });
    proxies.push(v6);
    const ca = `sslrootcert=${encodeURIComponent(certs.caFile)}`;
    await rejectsWithCode(connect(via(v6, `?${ca}`)), 'WARDEN_E_TLS_UNAVAILABLE');
    const codes = await warningsDuring(async () => {
      const client = await connect(via(v6, `?sslmode=verify-ca&${ca}`));
      try {
        assert.equal(await sslInUse(client), true);
      } finally {
        await client.end();
      }
    });
    assert.deepEqual(codes, ['WARDEN_W_TLS_HOST_UNVERIFIED']);
  },
);

test(
  'on loopback, the default keeps using TLS when offered, verified against the configured CA',
  { skip },
  async () => {
    const client = await connect(
      connectionFromUrl(
        `postgres://warden:${PASSWORD}@localhost:${cluster.port}/postgres?sslrootcert=${encodeURIComponent(certs.caFile)}`,
      ),
    );
    try {
      assert.equal(await sslInUse(client), true);
    } finally {
      await client.end();
    }
  },
);

test(
  '@warden/app/db pools: the stripping proxy and an untrusted certificate are refused, verified TLS with the CA',
  { skip },
  async () => {
    const options = {
      connectTimeoutMs: 10_000,
      keepAlive: true,
      keepAliveInitialDelayMs: 10_000,
      applicationName: 't',
    };
    const host = (proxy: TcpProxy, query = '') =>
      resolveConfig({ primary: `postgres://warden:${PASSWORD}@${proxy.host}:${proxy.port}/postgres${query}` })
        .initialPrimary!;
    // As the database opens a session: the connector, its failure wrapped by connectError.
    const open = (target: HostTarget) =>
      pgConnector(target, options).catch((error: unknown) => {
        throw connectError(error, target.key);
      });
    const tlsRefused = (error: unknown) => isDataLayerError(error, 'WARDEN_E_TLS_UNAVAILABLE');
    await assert.rejects(open(host(stripping)), tlsRefused);
    // An honest server whose certificate nothing configured trusts: refused, not used unverified.
    await assert.rejects(open(host(transparent)), tlsRefused);
    const connection = await pgConnector(
      host(transparent, `?sslrootcert=${encodeURIComponent(certs.caFile)}`),
      options,
    );
    try {
      const result = await connection.query<{ ssl: boolean }>(
        'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      );
      assert.equal(result.rows[0]!.ssl, true);
    } finally {
      await connection.close();
    }
  },
);

test(
  'the CLI refuses a backup and a WAL stream through the stripping proxy, and takes the backup with sslmode=disable (warning once)',
  { skip },
  async () => {
    const repo = path.join(work, 'repo');
    const db = (query = '') => `postgres://warden@${stripping.host}:${stripping.port}/postgres${query}`;
    const common = ['--repo', repo, '--no-encryption', '--password-file', path.join(work, 'pw')];
    const refused = await runWarden(['backup', '--db', db(), ...common], { cwd: work });
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /WARDEN_E_TLS_UNAVAILABLE/);
    const streamed = await runWarden(['wal', 'stream', '--db', db(), ...common], { cwd: work });
    assert.equal(streamed.code, 3, streamed.stderr);
    assert.match(streamed.stderr, /WARDEN_E_TLS_UNAVAILABLE/);
    const backups = await readdir(path.join(repo, 'backups')).catch(() => []);
    assert.deepEqual(backups, [], 'no backup written');

    const allowed = await runWarden(['backup', '--db', db('?sslmode=disable'), ...common], { cwd: work });
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(allowed.stderr.match(/WARDEN_W_TLS_DISABLED/g)?.length, 1, allowed.stderr);
  },
);
