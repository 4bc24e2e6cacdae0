import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { resolveHttpPlan, tokenDigest, type HttpSection } from '../../src/daemon/http-config.ts';
import { isWardenError } from '../../src/errors.ts';

let dir: string;
const TOKEN = 'k3Zq9yW4tB7nR2xV8mL5pC1dF6gH0jS';
const TLS = { certFile: 'tls/cert.pem', keyFile: 'tls/key.pem' };

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'warden-http-config-'));
  await writeFile(path.join(dir, 'alice.token'), `${TOKEN}xyz\n`);
  await writeFile(path.join(dir, 'short.token'), 'letmein\n');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const resolve = (section: HttpSection) => resolveHttpPlan(section, dir, undefined);

function assertConfigError(fn: () => unknown, field: string, fields?: string[]) {
  assert.throws(fn, (error) => {
    assert.ok(isWardenError(error, 'WARDEN_E_CONFIG_INVALID'), String(error));
    assert.equal(error.details.field, field, error.message);
    assert.ok(error.message.startsWith(fields ? fields.join(' and ') : field), error.message);
    if (fields) assert.deepEqual(error.details.fields, fields);
    return true;
  });
}

test('a loopback bind needs neither TLS nor tokens', () => {
  for (const host of ['127.0.0.1', '127.0.0.53', 'localhost', '::1', '[::1]']) {
    const plan = resolve({ host });
    assert.deepEqual(plan.tokens, []);
    assert.equal(plan.tls, undefined);
  }
  const defaults = resolve({});
  assert.equal(defaults.host, '127.0.0.1');
  assert.equal(defaults.port, 7480);
  assert.equal(defaults.sessionTtlMs, 12 * 3_600_000);
});

test('a bind that is not loopback without TLS or tokens is refused, naming the fields', () => {
  for (const host of ['0.0.0.0', '::', '10.0.0.5', 'warden.example.com', '::ffff:10.0.0.5']) {
    assertConfigError(() => resolve({ host }), 'daemon.http.tls', ['daemon.http.tls', 'daemon.http.tokens']);
  }
  const tokens = [{ name: 'alice', role: 'operator' as const, tokenSha256: tokenDigest(TOKEN) }];
  assertConfigError(() => resolve({ host: '0.0.0.0', tokens }), 'daemon.http.tls');
  assertConfigError(() => resolve({ host: '0.0.0.0', tls: TLS }), 'daemon.http.tokens');
  const plan = resolve({ host: '0.0.0.0', tls: TLS, tokens });
  assert.deepEqual(plan.tls, {
    certFile: path.join(dir, 'tls/cert.pem'),
    keyFile: path.join(dir, 'tls/key.pem'),
  });
});

test('token files are read and only their SHA-256 is kept', () => {
  const plan = resolve({
    tokens: [
      { name: 'alice', role: 'operator', tokenFile: 'alice.token' },
      { name: 'grafana', role: 'viewer', tokenSha256: tokenDigest(TOKEN).toUpperCase() },
    ],
  });
  assert.deepEqual(plan.tokens, [
    { name: 'alice', role: 'operator', sha256: tokenDigest(`${TOKEN}xyz`) },
    { name: 'grafana', role: 'viewer', sha256: tokenDigest(TOKEN) },
  ]);
  assert.ok(!JSON.stringify(plan).includes(TOKEN), 'the plan holds no token');
});

test('bad token entries are refused with the field path, never echoing a token', () => {
  const field = 'daemon.http.tokens.1';
  const first = { name: 'alice', role: 'operator' as const, tokenFile: 'alice.token' };
  assertConfigError(
    () =>
      resolve({
        tokens: [
          first,
          { name: 'bob', role: 'viewer', tokenFile: 'alice.token', tokenSha256: tokenDigest(TOKEN) },
        ],
      }),
    field,
  );
  assertConfigError(() => resolve({ tokens: [first, { name: 'bob', role: 'viewer' }] }), field);
  assertConfigError(
    () => resolve({ tokens: [first, { name: 'alice', role: 'viewer', tokenSha256: tokenDigest(TOKEN) }] }),
    `${field}.name`,
  );
  assertConfigError(
    () =>
      resolve({ tokens: [first, { name: 'bob', role: 'viewer', tokenSha256: tokenDigest(`${TOKEN}xyz`) }] }),
    `${field}.tokenSha256`,
  );
  assertConfigError(
    () => resolve({ tokens: [first, { name: 'bob', role: 'viewer', tokenFile: 'missing.token' }] }),
    `${field}.tokenFile`,
  );
  assert.throws(
    () => resolve({ tokens: [first, { name: 'bob', role: 'viewer', tokenFile: 'short.token' }] }),
    (error) => {
      assert.ok(isWardenError(error, 'WARDEN_E_CONFIG_INVALID'));
      assert.equal(error.details.field, `${field}.tokenFile`);
      assert.ok(!error.message.includes('letmein'), error.message);
      return true;
    },
  );
});

test('allowedHosts take names and addresses only; sessionTtl has a floor', () => {
  assert.deepEqual(resolve({ allowedHosts: ['Warden.Example.com', '10.0.0.5', '[FD00::1]'] }).allowedHosts, [
    'warden.example.com',
    '10.0.0.5',
    'fd00::1',
  ]);
  for (const bad of ['https://warden.example.com', 'warden.example.com:443', 'warden.example.com/x', 'a b']) {
    assertConfigError(() => resolve({ allowedHosts: ['ok.example', bad] }), 'daemon.http.allowedHosts.1');
  }
  assertConfigError(() => resolve({ sessionTtl: '30s' }), 'daemon.http.sessionTtl');
  assertConfigError(() => resolve({ sessionTtl: 'a while' }), 'daemon.http.sessionTtl');
  assert.equal(resolve({ sessionTtl: '1h' }).sessionTtlMs, 3_600_000);
});

test('warden.yaml: an unknown role or field under daemon.http is refused with its path', async () => {
  const cases: [string, string][] = [
    ['      - { name: alice, role: admin, tokenFile: alice.token }', 'daemon.http.tokens.0.role'],
    ['      - { name: alice, role: viewer, token: plain-text-token }', 'daemon.http.tokens.0'],
    ['      - { name: alice, role: viewer, tokenSha256: abc }', 'daemon.http.tokens.0.tokenSha256'],
  ];
  for (const [line, field] of cases) {
    const file = path.join(dir, 'warden.yaml');
    await writeFile(file, ['daemon:', '  http:', '    tokens:', line, ''].join('\n'));
    assert.throws(
      () => loadConfig({ flags: { config: file }, env: {}, cwd: dir }),
      (error) => {
        assert.ok(isWardenError(error, 'WARDEN_E_CONFIG_INVALID'), String(error));
        assert.equal(error.details.field, field);
        return true;
      },
    );
  }
});
