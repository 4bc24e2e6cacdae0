import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { tokenDigest } from '../../src/daemon/http-config.ts';
import { freePort } from '../../src/util/free-port.ts';
import { onExit } from '../harness/cleanup.ts';
import { runWarden, WARDEN_BIN } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

/**
 * `warden serve` as a user runs it, with the status API bound to the wildcard address (not
 * loopback, so TLS and tokens are required) and reached on 127.0.0.1 over HTTPS, verified
 * against a self-signed certificate made for this test with the openssl CLI.
 */

let cluster: TestCluster;
let dir: string;
let cert: Buffer;
const OPS_TOKEN = 'ops-0123456789abcdefghijklmnopqrstuvwxyz';
const VIEWER_TOKEN = 'viewer-0123456789abcdefghijklmnopqrstuvwxyz';
const children = new Set<ChildProcess>();

const yaml = (http: string[]) =>
  [
    'daemon:',
    '  profile: dev',
    '  walStreaming: false',
    '  heartbeat: false',
    '  schedules: { full-backup: null, backup: null, logical-dump: null, retention: null, verification: null, drill: null }',
    '  http:',
    ...http.map((line) => `    ${line}`),
    '',
  ].join('\n');

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'warden-http-tls-'));
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=warden test',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout',
    path.join(dir, 'key.pem'),
    '-out',
    path.join(dir, 'cert.pem'),
  ]);
  cert = await readFile(path.join(dir, 'cert.pem'));
  await writeFile(path.join(dir, 'ops.token'), `${OPS_TOKEN}\n`);
  cluster = await startCluster();
});
after(async () => {
  for (const child of children) {
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
}

function get(
  port: number,
  method: string,
  route: string,
  headers: Record<string, string> = {},
  tls: { ca?: Buffer } = { ca: cert },
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = https.request(
      // With a Host header set, Node would verify the certificate against that name: the
      // certificate is checked for localhost instead, whatever Host says.
      {
        host: '127.0.0.1',
        port,
        method,
        path: route,
        headers,
        ...tls,
        ...(headers.host ? { servername: 'localhost' } : {}),
        agent: false,
      },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () =>
          resolve({
            status: response.statusCode!,
            headers: response.headers,
            body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
          }),
        );
      },
    );
    request.on('error', reject);
    request.end();
  });
}

test(
  'warden serve on a non-loopback bind serves HTTPS with named tokens and a Secure session cookie',
  { timeout: 180_000 },
  async () => {
    const port = await freePort('0.0.0.0');
    const config = path.join(dir, 'serve.yaml');
    await writeFile(
      config,
      yaml([
        'host: 0.0.0.0',
        `port: ${port}`,
        'allowedHosts: [warden.test]',
        'tls: { certFile: cert.pem, keyFile: key.pem }',
        'tokens:',
        '  - { name: ops, role: operator, tokenFile: ops.token }',
        `  - { name: grafana, role: viewer, tokenSha256: ${tokenDigest(VIEWER_TOKEN)} }`,
      ]),
    );
    const child = spawn(
      process.execPath,
      [
        WARDEN_BIN,
        'serve',
        '--config',
        config,
        '--db',
        `${cluster.url()}?sslmode=disable`,
        '--repo',
        path.join(dir, 'repo'),
        '--no-encryption',
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WARDEN_LOG_LEVEL: 'info' } },
    );
    children.add(child);
    const removeHook = onExit(() => child.kill('SIGKILL'));
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, 'exit');
    while (!/status: \w+:\/\//.test(output)) {
      assert.equal(child.exitCode, null, output);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.match(output, new RegExp(`status: https://0\\.0\\.0\\.0:${port}/api/status \\(2 tokens\\)`));

    try {
      // Verified against the test's certificate; without it, the handshake is refused.
      await assert.rejects(get(port, 'GET', '/api/health', {}, {}), (error: NodeJS.ErrnoException) => {
        assert.match(error.code ?? '', /SELF_SIGNED/);
        return true;
      });
      // No plaintext HTTP on the TLS port.
      await assert.rejects(
        new Promise((resolve, reject) =>
          http
            .get({ host: '127.0.0.1', port, path: '/api/health', agent: false }, resolve)
            .on('error', reject),
        ),
      );

      const health = await get(port, 'GET', '/api/health');
      assert.ok(health.status === 200 || health.status === 503);
      assert.deepEqual(Object.keys(health.body), ['ok'], 'the open health check says only healthy or not');

      const anonymous = await get(port, 'GET', '/api/status');
      assert.equal(anonymous.status, 401);
      assert.equal((anonymous.body.error as { code: string }).code, 'WARDEN_E_HTTP_AUTH_REQUIRED');
      const wrong = await get(port, 'GET', '/api/status', { authorization: `Bearer ${OPS_TOKEN}x` });
      assert.equal(wrong.status, 401);

      const status = await get(port, 'GET', '/api/status', { authorization: `Bearer ${VIEWER_TOKEN}` });
      assert.equal(status.status, 200);
      assert.deepEqual(
        (status.body.clusters as { name: string }[]).map((c) => c.name),
        ['default'],
      );
      const named = await get(port, 'GET', '/api/status', {
        authorization: `Bearer ${OPS_TOKEN}`,
        host: `warden.test:${port}`,
      });
      assert.equal(named.status, 200);
      const rebound = await get(port, 'GET', '/api/status', {
        authorization: `Bearer ${OPS_TOKEN}`,
        host: `attacker.test:${port}`,
      });
      assert.equal(rebound.status, 421);
      assert.equal((rebound.body.error as { code: string }).code, 'WARDEN_E_HTTP_HOST_REFUSED');

      const signIn = await get(port, 'POST', '/api/session', { authorization: `Bearer ${OPS_TOKEN}` });
      assert.equal(signIn.status, 200);
      const [cookie] = signIn.headers['set-cookie']!;
      const id =
        /^__Host-warden_session=([A-Za-z0-9_-]{43}); Path=\/; Max-Age=43200; HttpOnly; SameSite=Strict; Secure$/.exec(
          cookie!,
        )?.[1];
      assert.ok(id, cookie);
      const me = await get(port, 'GET', '/api/session', { cookie: `__Host-warden_session=${id}` });
      assert.deepEqual(me.body, { name: 'ops', role: 'operator', via: 'session' });
      const detailed = await get(port, 'GET', '/api/health', { cookie: `__Host-warden_session=${id}` });
      assert.ok(Array.isArray(detailed.body.alerts), 'a signed-in caller sees the alerts');
    } finally {
      child.kill('SIGTERM');
      const [code] = await exited;
      removeHook();
      children.delete(child);
      assert.equal(code, 0, output);
    }
    assert.match(output, /"caller":"grafana"/, 'requests are logged with the caller');
    for (const token of [OPS_TOKEN, VIEWER_TOKEN])
      assert.ok(!output.includes(token), 'a token reached the output');
  },
);

test(
  'warden serve refuses a non-loopback bind without TLS or tokens, naming the fields',
  { timeout: 60_000 },
  async () => {
    const run = async (http: string[]) => {
      const config = path.join(dir, 'refused.yaml');
      await writeFile(config, yaml(http));
      const result = await runWarden(
        [
          'serve',
          '--config',
          config,
          '--db',
          `${cluster.url()}?sslmode=disable`,
          '--repo',
          path.join(dir, 'repo-refused'),
          '--no-encryption',
          '--json',
        ],
        { cwd: dir },
      );
      assert.equal(result.code, 2, result.stdout + result.stderr);
      return (
        JSON.parse(result.stdout) as { error: { code: string; message: string; details: { field: string } } }
      ).error;
    };
    const bare = await run(['host: 0.0.0.0', 'port: 0']);
    assert.equal(bare.code, 'WARDEN_E_CONFIG_INVALID');
    assert.equal(bare.details.field, 'daemon.http.tls');
    assert.match(
      bare.message,
      /^daemon\.http\.tls and daemon\.http\.tokens: required when daemon\.http\.host \("0\.0\.0\.0"\)/,
    );
    const noTokens = await run(['host: "::"', 'port: 0', 'tls: { certFile: cert.pem, keyFile: key.pem }']);
    assert.equal(noTokens.details.field, 'daemon.http.tokens');
    const badKey = await run([
      'host: 0.0.0.0',
      'port: 0',
      'tls: { certFile: cert.pem, keyFile: ops.token }',
      'tokens: [{ name: ops, role: operator, tokenFile: ops.token }]',
    ]);
    assert.equal(badKey.code, 'WARDEN_E_CONFIG_INVALID');
    assert.equal(badKey.details.field, 'daemon.http.tls');
    const missingCert = await run([
      'host: 0.0.0.0',
      'port: 0',
      'tls: { certFile: nowhere.pem, keyFile: key.pem }',
      'tokens: [{ name: ops, role: operator, tokenFile: ops.token }]',
    ]);
    assert.equal(missingCert.details.field, 'daemon.http.tls.certFile');
  },
);
