import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { resolveDaemonPlan } from '../../src/daemon/daemon-config.ts';
import { isWardenError } from '../../src/errors.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { resolvePassword, runPasswordCommand, splitCommand } from '../../src/postgres/password-source.ts';
import { lookupPgpass, matchPgpass } from '../../src/postgres/pgpass.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'warden-secrets-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const query = { host: 'db.internal', port: 5432, database: 'app', user: 'warden' };

test('pgpass: the first matching line wins, * matches any value, \\: and \\\\ are escapes', () => {
  const text = [
    '# comment',
    'other:5432:app:warden:not-this',
    'db.internal:5433:*:warden:wrong-port',
    'db.internal:5432:*:warden:pa\\:ss\\\\word',
    '*:*:*:*:fallback',
  ].join('\n');
  assert.equal(matchPgpass(text, query), 'pa:ss\\word');
  assert.equal(matchPgpass(text, { ...query, user: 'someone' }), 'fallback');
  // An escaped star is a literal star, not a wildcard.
  assert.equal(matchPgpass('\\*:5432:app:warden:x', query), undefined);
  assert.equal(matchPgpass('\\*:5432:app:warden:x', { ...query, host: '*' }), 'x');
  // A host name field with an escaped colon (an IPv6 address).
  assert.equal(matchPgpass('fd00\\:\\:2:5432:app:warden:v6', { ...query, host: 'fd00::2' }), 'v6');
  // A Unix socket directory also matches localhost lines.
  assert.equal(matchPgpass('localhost:5432:app:warden:sock', { ...query, host: '/run/postgresql' }), 'sock');
});

test('pgpass: a file that group or others may read is ignored with a warning, as libpq does', async () => {
  const file = path.join(dir, 'pgpass');
  await writeFile(file, 'db.internal:5432:app:warden:s3cret\n');
  await chmod(file, 0o600);
  assert.equal(lookupPgpass(file, query), 's3cret');
  await chmod(file, 0o640);
  const warnings: string[] = [];
  const onWarning = (warning: Error & { code?: string }) => warnings.push(warning.code ?? '');
  process.on('warning', onWarning);
  assert.equal(lookupPgpass(file, query), undefined);
  await new Promise((resolve) => setImmediate(resolve));
  process.off('warning', onWarning);
  assert.deepEqual(warnings, ['WARDEN_W_PGPASS_IGNORED']);
  assert.equal(lookupPgpass(path.join(dir, 'missing'), query), undefined, 'a missing file is no error');
});

test('passwords come from the inline value, then passwordFile, passwordCommand, PGPASSWORD, then PGPASSFILE', async () => {
  const pgpass = path.join(dir, 'pgpass-order');
  await writeFile(pgpass, '*:*:replication:*:from-pgpass-replication\n*:*:*:*:from-pgpass\n', {
    mode: 0o600,
  });
  const passwordFile = path.join(dir, 'pw');
  await writeFile(passwordFile, 'from-file\nsecond line ignored\n');
  const base = connectionFromUrl('postgres://warden@db.internal/app');
  const env = { PGPASSFILE: pgpass };
  assert.equal(await resolvePassword(base, { env }), 'from-pgpass');
  assert.equal(await resolvePassword(base, { env, replication: true }), 'from-pgpass-replication');
  assert.equal(await resolvePassword(base, { env: { ...env, PGPASSWORD: 'from-env' } }), 'from-env');
  const command = { ...base, passwordCommand: ['printf', 'from-command\\nmore'] };
  assert.equal(await resolvePassword(command, { env }), 'from-command');
  assert.equal(await resolvePassword({ ...command, passwordFile }, { env }), 'from-file');
  assert.equal(await resolvePassword({ ...base, passwordFile, password: 'inline' }, { env }), 'inline');
  assert.equal(await resolvePassword(base, { env: { PGPASSFILE: path.join(dir, 'none') } }), undefined);
});

test('a failing password command is reported without its output or arguments', async () => {
  const marker = 'token-marker-93417';
  await assert.rejects(
    runPasswordCommand(['sh', '-c', `echo ${marker}; echo ${marker} >&2; exit 3`, marker]),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_SECRET_UNAVAILABLE') &&
      error.details.exitCode === 3 &&
      !JSON.stringify({ m: error.message, d: error.details, h: error.hint }).includes(marker),
  );
  await assert.rejects(runPasswordCommand(['true']), (error: unknown) =>
    isWardenError(error, 'WARDEN_E_SECRET_UNAVAILABLE'),
  );
  await assert.rejects(runPasswordCommand([path.join(dir, 'no-such-program')]), (error: unknown) =>
    isWardenError(error, 'WARDEN_E_SECRET_UNAVAILABLE'),
  );
});

test('a password command string is split into words without a shell', () => {
  assert.deepEqual(splitCommand(`vault kv get -field=password 'secret/my db' "a \\"b\\"" c\\ d`, 'f'), [
    'vault',
    'kv',
    'get',
    '-field=password',
    'secret/my db',
    'a "b"',
    'c d',
  ]);
  assert.deepEqual(splitCommand('echo $HOME `id` | cat', 'f'), ['echo', '$HOME', '`id`', '|', 'cat']);
  assert.throws(
    () => splitCommand("echo 'open", 'cluster.passwordCommand'),
    (error: unknown) => isWardenError(error, 'WARDEN_E_CONFIG_INVALID'),
  );
});

test('a % in a URL password: percent-encoded it works, bare it is a config error that never shows the password', () => {
  assert.equal(connectionFromUrl('postgres://u:50%25%40off@h/db').password, '50%@off');
  for (const url of ['postgres://u:50%off@h/db', 'postgres://u:ab%@h/db']) {
    assert.throws(
      () => connectionFromUrl(url, '--db'),
      (error: unknown) =>
        isWardenError(error, 'WARDEN_E_CONFIG_INVALID') &&
        error.details.field === '--db' &&
        !error.message.includes('off') &&
        !error.message.includes('ab%'),
    );
  }
});

test('cluster password sources in warden.yaml: one at a time, paths relative to the file, flags override', async () => {
  const cwd = await mkdtemp(path.join(dir, 'cfg-'));
  await writeFile(
    path.join(cwd, 'warden.yaml'),
    'cluster:\n  url: postgres://warden:in-url@db.internal/app\n  passwordFile: secrets/pw\n  tlsCa: ca.pem\n',
  );
  const fromFile = loadConfig({ flags: {}, env: {}, cwd });
  assert.equal(fromFile.cluster?.password, undefined, 'passwordFile replaces the URL password');
  assert.equal(fromFile.cluster?.passwordFile, path.join(cwd, 'secrets/pw'));
  assert.equal(fromFile.cluster?.tlsCa, path.join(cwd, 'ca.pem'));
  const flagged = loadConfig({ flags: { passwordCommand: 'pass show db/warden' }, env: {}, cwd });
  assert.deepEqual(flagged.cluster?.passwordCommand, ['pass', 'show', 'db/warden']);
  assert.equal(flagged.cluster?.passwordFile, undefined);
  assert.equal(flagged.cluster?.host, 'db.internal');

  await writeFile(
    path.join(cwd, 'warden.yaml'),
    'cluster:\n  host: db.internal\n  password: a\n  passwordCommand: [pass, show, x]\n',
  );
  assert.throws(
    () => loadConfig({ flags: {}, env: {}, cwd }),
    (error: unknown) => isWardenError(error, 'WARDEN_E_CONFIG_INVALID'),
  );
});

test('daemon clusters may be objects with host, user, passwordFile and passwordCommand', () => {
  const plan = resolveDaemonPlan({
    section: {
      clusters: [
        { name: 'a', host: 'db-a.internal', user: 'warden', passwordFile: 'pw-a', tls: 'verify-full' },
        { name: 'b', url: 'postgres://warden@127.0.0.1:5433/app', passwordCommand: ['pass', 'show', 'b'] },
      ],
    },
    baseDir: '/etc/warden',
    defaultCluster: { repository: { path: '/srv/repo' }, slot: 'warden' },
    retention: DEFAULT_RETENTION_POLICY,
    flags: {},
    env: {},
  });
  const [a, b] = plan.clusters;
  assert.equal(a?.connection?.host, 'db-a.internal');
  assert.equal(a?.connection?.passwordFile, '/etc/warden/pw-a');
  assert.equal(a?.connection?.tls, 'require');
  assert.equal(b?.connection?.port, 5433);
  assert.deepEqual(b?.connection?.passwordCommand, ['pass', 'show', 'b']);
});

test('a config file holding a password warns while other users may read it, naming the field, not the value', async () => {
  const cwd = await mkdtemp(path.join(dir, 'readable-'));
  const file = path.join(cwd, 'warden.yaml');
  await writeFile(file, 'cluster:\n  host: db.internal\n  password: hunter2-value\n');
  const messages: string[] = [];
  const listener = (warning: Error & { code?: string }) => {
    if (warning.code === 'WARDEN_W_SECRET_IN_READABLE_FILE') messages.push(warning.message);
  };
  process.on('warning', listener);
  try {
    await chmod(file, 0o600);
    loadConfig({ flags: {}, env: {}, cwd });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(messages.length, 0, 'mode 0600: no warning');
    await chmod(file, 0o644);
    loadConfig({ flags: {}, env: {}, cwd });
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', listener);
  }
  assert.equal(messages.length, 1);
  assert.match(messages[0]!, /cluster\.password/);
  assert.ok(!messages[0]!.includes('hunter2-value'));
});
