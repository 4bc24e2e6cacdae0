import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { tokenDigest, type HttpPlan } from '../../src/daemon/http-config.ts';
import type { DaemonStatus } from '../../src/daemon/daemon.ts';
import type { ClusterStatus } from '../../src/daemon/status.ts';
import { HostCheck } from '../../src/server/host-check.ts';
import type { Route } from '../../src/server/route.ts';
import { createStatusApp, type StatusAppOptions } from '../../src/server/status-app.ts';

/**
 * The status API's access rules, in-process: the app is a request listener served on a loopback
 * port per test; requests set the Host, Origin, Authorization and Cookie headers by hand.
 */

const VIEWER_TOKEN = 'v'.repeat(20) + 'iewer-token-0123456789';
const OPERATOR_TOKEN = 'o'.repeat(20) + 'perator-token-0123456789';
const TOKENS: HttpPlan['tokens'] = [
  { name: 'grafana', role: 'viewer', sha256: tokenDigest(VIEWER_TOKEN) },
  { name: 'alice', role: 'operator', sha256: tokenDigest(OPERATOR_TOKEN) },
];
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

let alerts: string[] = [];
const source = {
  status: async (): Promise<DaemonStatus> => ({
    daemon: { startedAt: '2026-01-01T00:00:00.000Z', warnings: [] },
    clusters: [{ name: 'main', alerts } as unknown as ClusterStatus],
  }),
};

/** A stand-in for the operator actions later work adds; it reports who called it. */
const operatorRoute: Route = {
  method: 'POST',
  path: '/api/drills',
  access: 'operator',
  handle: ({ identity, send }) => send(202, { startedBy: identity!.name }),
};

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
}

const servers: http.Server[] = [];
after(() => {
  for (const server of servers) server.close();
});

async function serve(options: StatusAppOptions = {}) {
  const server = http.createServer(createStatusApp(source, { routes: [operatorRoute], ...options }));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const call = (
    method: string,
    path: string,
    headers: Record<string, string | undefined> = {},
    body?: string,
  ): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const explicitHost = 'host' in headers;
      const sent = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined)) as Record<
        string,
        string
      >;
      const request = http.request(
        { host: '127.0.0.1', port, method, path, headers: sent, setHost: !explicitHost, agent: false },
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
      request.end(body);
    });
  return { port, call };
}

const tokenAuth = (token: string) => ({ authorization: `Bearer ${token}` });
const errorCode = (reply: Reply) => (reply.body.error as { code: string } | undefined)?.code;
const withTokens = (extra: Partial<NonNullable<StatusAppOptions['http']>> = {}): StatusAppOptions => ({
  http: { host: '127.0.0.1', allowedHosts: [], tokens: TOKENS, sessionTtlMs: 12 * 3_600_000, ...extra },
});

test('on loopback without tokens the API is open to viewers, as before', async () => {
  alerts = ['verification failed'];
  const { call } = await serve();
  assert.equal((await call('GET', '/api/status')).status, 200);
  const health = await call('GET', '/api/health');
  assert.equal(health.status, 503);
  assert.deepEqual(health.body, { ok: false, alerts: ['main: verification failed'] });
  alerts = [];
  assert.equal((await call('GET', '/nope')).status, 404);
  const post = await call('POST', '/api/status');
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
  // Operator actions always need a token: an anonymous loopback caller is only a viewer.
  const action = await call('POST', '/api/drills');
  assert.equal(action.status, 403);
  assert.equal(errorCode(action), 'WARDEN_E_HTTP_ROLE_DENIED');
  // Credentials that are presented are checked even here.
  const wrong = await call('GET', '/api/status', tokenAuth('not-a-token'));
  assert.equal(wrong.status, 401);
});

test('a Host header that names another server is refused (DNS rebinding), whatever the route', async () => {
  const { call, port } = await serve();
  for (const host of [
    `127.0.0.1:${port}`,
    '127.0.0.1',
    `localhost:${port}`,
    'LOCALHOST',
    `[::1]:${port}`,
    '[::1]',
  ]) {
    assert.equal((await call('GET', '/api/status', { host })).status, 200, host);
  }
  for (const host of [
    'attacker.example',
    `attacker.example:${port}`,
    'localhost.attacker.example',
    '127.0.0.1.nip.io',
    '[::2]',
    '::1',
    'localhost:port',
    '',
  ]) {
    for (const path of ['/api/status', '/api/health', '/api/session', '/nope']) {
      const reply = await call('GET', path, { host });
      assert.equal(reply.status, 421, `${host} ${path}`);
      assert.equal(errorCode(reply), 'WARDEN_E_HTTP_HOST_REFUSED');
    }
  }
  // No Host header at all: Node refuses that in HTTP/1.1 (400); HTTP/1.0 allows it, the app refuses.
  assert.equal((await call('GET', '/api/status', { host: undefined })).status, 400);
  const socket = net.connect(port, '127.0.0.1');
  socket.end('GET /api/status HTTP/1.0\r\n\r\n');
  let raw = '';
  for await (const chunk of socket) raw += String(chunk);
  assert.match(raw, /^HTTP\/1\.1 421 /);
  assert.match(raw, /WARDEN_E_HTTP_HOST_REFUSED/);
});

test('configured names and the listen address pass the Host check; a wildcard bind allows interface addresses', () => {
  const named = HostCheck.forPlan({ host: '10.1.2.3', allowedHosts: ['warden.example.com'] });
  assert.ok(named.allowsHost('warden.example.com'));
  assert.ok(named.allowsHost('Warden.Example.com:7480'));
  assert.ok(named.allowsHost('10.1.2.3:7480'));
  assert.ok(named.allowsHost('localhost:7480'));
  assert.ok(!named.allowsHost('evil.example.com'));
  assert.ok(!named.allowsHost('warden.example.com.evil.example'));
  assert.ok(!named.allowsHost('warden.example.com:80:80'));
  const v6 = HostCheck.forPlan({ host: 'fd00::1', allowedHosts: [] });
  assert.ok(v6.allowsHost('[fd00:0::1]:443'));
  assert.ok(!v6.allowsHost('fd00::1'), 'an IPv6 Host must be bracketed');
  const wildcard = HostCheck.forPlan({ host: '0.0.0.0', allowedHosts: [] });
  assert.ok(wildcard.allowsHost('127.0.0.1:7480'));
  assert.ok(!wildcard.allowsHost('0.0.0.0'), 'the wildcard itself is no name');
  assert.ok(!wildcard.allowsHost('evil.example.com'));
  assert.ok(named.allowsOrigin('https://warden.example.com:8443'));
  assert.ok(!named.allowsOrigin('https://evil.example.com'));
  assert.ok(!named.allowsOrigin('null'));
});

test('with tokens: no token 401, a wrong or malformed one 401, a viewer token reads status', async () => {
  const { call } = await serve(withTokens());
  const missing = await call('GET', '/api/status');
  assert.equal(missing.status, 401);
  assert.equal(errorCode(missing), 'WARDEN_E_HTTP_AUTH_REQUIRED');
  assert.equal(missing.headers['www-authenticate'], 'Bearer realm="warden"');
  for (const authorization of [
    `Bearer ${VIEWER_TOKEN}x`,
    `Bearer ${VIEWER_TOKEN.slice(0, -1)}`,
    `Basic ${Buffer.from(`grafana:${VIEWER_TOKEN}`).toString('base64')}`,
    'Bearer',
    `Bearer ${tokenDigest(VIEWER_TOKEN)}`,
  ]) {
    const wrong = await call('GET', '/api/status', { authorization });
    assert.equal(wrong.status, 401, authorization);
    assert.equal(errorCode(wrong), 'WARDEN_E_HTTP_AUTH_REQUIRED');
    assert.equal(wrong.headers['www-authenticate'], 'Bearer realm="warden", error="invalid_token"');
  }
  const ok = await call('GET', '/api/status', tokenAuth(VIEWER_TOKEN));
  assert.equal(ok.status, 200);
  assert.equal((ok.body.clusters as unknown[]).length, 1);
  assert.equal((await call('GET', '/api/status', { authorization: `bearer ${OPERATOR_TOKEN}` })).status, 200);
  // The Host check comes first, token or not.
  assert.equal(
    (await call('GET', '/api/status', { ...tokenAuth(VIEWER_TOKEN), host: 'evil.example' })).status,
    421,
  );
});

test('roles: a viewer on an operator route gets 403, an operator passes and is named', async () => {
  const { call } = await serve(withTokens());
  const viewer = await call('POST', '/api/drills', tokenAuth(VIEWER_TOKEN));
  assert.equal(viewer.status, 403);
  assert.equal(errorCode(viewer), 'WARDEN_E_HTTP_ROLE_DENIED');
  assert.deepEqual((viewer.body.error as { details: unknown }).details, {
    needed: 'operator',
    caller: 'grafana',
    role: 'viewer',
  });
  const nobody = await call('POST', '/api/drills');
  assert.equal(nobody.status, 401);
  const operator = await call('POST', '/api/drills', tokenAuth(OPERATOR_TOKEN));
  assert.equal(operator.status, 202);
  assert.deepEqual(operator.body, { startedBy: 'alice' });
});

test('/api/health is open and terse without credentials, detailed for a viewer', async () => {
  const { call } = await serve(withTokens());
  alerts = [];
  const healthy = await call('GET', '/api/health');
  assert.equal(healthy.status, 200);
  assert.deepEqual(healthy.body, { ok: true });
  alerts = ['drill failed: RTO 5h exceeds 4h'];
  const unhealthy = await call('GET', '/api/health');
  assert.equal(unhealthy.status, 503);
  assert.deepEqual(unhealthy.body, { ok: false }, 'no alert text without credentials');
  const detailed = await call('GET', '/api/health', tokenAuth(VIEWER_TOKEN));
  assert.deepEqual(detailed.body, { ok: false, alerts: ['main: drill failed: RTO 5h exceeds 4h'] });
  alerts = [];
});

test('a browser signs in with a token once and gets an HttpOnly SameSite=Strict session cookie; sign-out ends it', async () => {
  const { call } = await serve(withTokens());
  const json = { 'content-type': 'application/json' };
  const refused = await call('POST', '/api/session', json, JSON.stringify({ token: 'guess' }));
  assert.equal(refused.status, 401);
  assert.equal(refused.headers['set-cookie'], undefined);
  const empty = await call('POST', '/api/session');
  assert.equal(empty.status, 401);

  const signIn = await call('POST', '/api/session', json, JSON.stringify({ token: VIEWER_TOKEN }));
  assert.equal(signIn.status, 200);
  assert.equal(signIn.body.name, 'grafana');
  assert.equal(signIn.body.role, 'viewer');
  const [cookie] = signIn.headers['set-cookie']!;
  const match = /^warden_session=([^;]*); Path=\/; Max-Age=43200; HttpOnly; SameSite=Strict$/.exec(cookie!);
  assert.ok(match, cookie);
  const sessionId = match[1]!;
  assert.match(sessionId, SESSION_ID);
  assert.ok(!cookie!.includes(VIEWER_TOKEN), 'the cookie does not carry the token');

  const withCookie = { cookie: `other=1; warden_session=${sessionId}` };
  assert.equal((await call('GET', '/api/status', withCookie)).status, 200);
  assert.deepEqual((await call('GET', '/api/session', withCookie)).body, {
    name: 'grafana',
    role: 'viewer',
    via: 'session',
  });
  assert.deepEqual((await call('GET', '/api/health', withCookie)).body, { ok: true, alerts: [] });
  assert.equal((await call('POST', '/api/drills', withCookie)).status, 403, 'a session keeps its role');
  const forged = await call('GET', '/api/status', { cookie: `warden_session=${'A'.repeat(43)}` });
  assert.equal(forged.status, 401);
  assert.match(forged.headers['set-cookie']![0]!, /^warden_session=; /, 'a stale cookie is cleared');
  assert.equal((await call('GET', '/api/status', { cookie: `warden_session=${VIEWER_TOKEN}` })).status, 401);

  const signOut = await call('DELETE', '/api/session', withCookie);
  assert.equal(signOut.status, 200);
  assert.deepEqual(signOut.headers['set-cookie'], [
    'warden_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict',
  ]);
  assert.equal((await call('GET', '/api/status', withCookie)).status, 401, 'the session is gone');

  // An Authorization header signs in too (scripts, or a dashboard holding the token briefly).
  const byHeader = await call('POST', '/api/session', tokenAuth(OPERATOR_TOKEN));
  assert.equal(byHeader.status, 200);
  assert.equal(byHeader.body.name, 'alice');
});

test('over TLS the session cookie is Secure and __Host- prefixed', async () => {
  const { call } = await serve(withTokens({ tls: { certFile: '/unused', keyFile: '/unused' } }));
  const signIn = await call('POST', '/api/session', tokenAuth(VIEWER_TOKEN));
  const [cookie] = signIn.headers['set-cookie']!;
  assert.match(
    cookie!,
    /^__Host-warden_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=43200; HttpOnly; SameSite=Strict; Secure$/,
  );
  const id = /=([^;]+);/.exec(cookie!)![1]!;
  assert.equal((await call('GET', '/api/status', { cookie: `__Host-warden_session=${id}` })).status, 200);
  assert.equal((await call('GET', '/api/status', { cookie: `warden_session=${id}` })).status, 401);
  assert.deepEqual(
    (await call('DELETE', '/api/session', { cookie: `__Host-warden_session=${id}` })).headers['set-cookie'],
    ['__Host-warden_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure'],
  );
});

test('a session expires after its time to live', async () => {
  const { call } = await serve(withTokens({ sessionTtlMs: 1_000 }));
  const signIn = await call('POST', '/api/session', tokenAuth(VIEWER_TOKEN));
  const id = /=([^;]+);/.exec(signIn.headers['set-cookie']![0]!)![1]!;
  assert.equal((await call('GET', '/api/status', { cookie: `warden_session=${id}` })).status, 200);
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  assert.equal((await call('GET', '/api/status', { cookie: `warden_session=${id}` })).status, 401);
});

test('a state-changing request from another origin is refused', async () => {
  const { call, port } = await serve(withTokens());
  for (const origin of ['https://attacker.example', 'null', 'file://']) {
    const reply = await call('POST', '/api/drills', { ...tokenAuth(OPERATOR_TOKEN), origin });
    assert.equal(reply.status, 403, origin);
    assert.equal(errorCode(reply), 'WARDEN_E_HTTP_ORIGIN_REFUSED');
    assert.equal((await call('POST', '/api/session', { ...tokenAuth(VIEWER_TOKEN), origin })).status, 403);
  }
  const sameOrigin = await call('POST', '/api/drills', {
    ...tokenAuth(OPERATOR_TOKEN),
    origin: `http://127.0.0.1:${port}`,
  });
  assert.equal(sameOrigin.status, 202);
});

test('the caller is named in the log; no token ever is', async () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const { call } = await serve({ ...withTokens(), logger: pino({ level: 'debug' }, sink) });
  await call('GET', '/api/status', tokenAuth(VIEWER_TOKEN));
  await call('POST', '/api/drills', tokenAuth(OPERATOR_TOKEN));
  await call('GET', '/api/status', tokenAuth(`${OPERATOR_TOKEN}0`));
  await call(
    'POST',
    '/api/session',
    { 'content-type': 'application/json' },
    JSON.stringify({ token: VIEWER_TOKEN }),
  );
  await new Promise((resolve) => setImmediate(resolve));
  const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  const served = records.filter((r) => r.msg === 'http: request');
  assert.deepEqual(
    served.map((r) => [r.caller, r.role, r.path, r.status]),
    [
      ['grafana', 'viewer', '/api/status', 200],
      ['alice', 'operator', '/api/drills', 202],
      [undefined, undefined, '/api/session', 200],
    ],
  );
  assert.ok(records.some((r) => r.msg === 'http: signed in' && r.caller === 'grafana'));
  assert.ok(records.some((r) => r.msg === 'http: invalid bearer token'));
  const all = lines.join('');
  for (const token of [VIEWER_TOKEN, OPERATOR_TOKEN])
    assert.ok(!all.includes(token), 'a token reached the log');
});

test('a request target that is no URL gets a 404, and the server keeps serving', async () => {
  const { port, call } = await serve();
  const socket = net.connect(port, '127.0.0.1');
  socket.end('GET http://[ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  let raw = '';
  for await (const chunk of socket) raw += String(chunk);
  assert.match(raw, /^HTTP\/1\.1 404 /);
  assert.equal((await call('GET', '/api/status')).status, 200);
});
