import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { parseBackupFrom } from '../../src/backup/backup-from.ts';
import { describeOrigin } from '../../src/cli/backup-origin-text.ts';
import { loadConfig } from '../../src/config/config.ts';
import { resolveDaemonPlan } from '../../src/daemon/daemon-config.ts';
import { isWardenError } from '../../src/errors.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';
import { tempDir } from '../harness/temp-dir.ts';

// Where backups run (`--from`, WARDEN_BACKUP_FROM, `backup.from`): values and precedence. The
// choice among real members is test/ha/patroni-standby-backup.test.ts's subject.

test('--from values: keywords, member names, URLs; anything else is refused naming the field', () => {
  assert.deepEqual(parseBackupFrom('primary', '--from'), { kind: 'primary' });
  assert.deepEqual(parseBackupFrom('standby', '--from'), { kind: 'standby', orPrimary: false });
  assert.deepEqual(parseBackupFrom('standby-or-primary', '--from'), { kind: 'standby', orPrimary: true });
  assert.deepEqual(parseBackupFrom('node2', '--from'), { kind: 'member', name: 'node2' });
  assert.deepEqual(parseBackupFrom('db2.internal:5432', '--from'), {
    kind: 'member',
    name: 'db2.internal:5432',
  });
  const url = parseBackupFrom('postgres://backup@replica1:5433/postgres', '--from');
  assert.equal(url.kind, 'url');
  assert.equal(url.kind === 'url' && url.connection.port, 5433);
  for (const bad of ['', 'node 2', '../etc', 'a/b', '-x', 'x'.repeat(201)])
    assert.throws(
      () => parseBackupFrom(bad, '--from'),
      (error: unknown) => isWardenError(error, 'WARDEN_E_USAGE') && error.details.field === '--from',
      bad,
    );
});

test('the configured source: WARDEN_BACKUP_FROM > cluster.backup.from > primary; a bad value fails at load', async () => {
  const cwd = await tempDir('backup-from');
  const file = path.join(cwd, 'warden.yaml');
  assert.deepEqual(loadConfig({ flags: {}, env: {}, cwd }).backupFrom, { kind: 'primary' });
  await writeFile(file, 'cluster:\n  url: postgres://u@db1/app\n  backup:\n    from: standby\n');
  const fromFile = loadConfig({ flags: {}, env: {}, cwd });
  assert.deepEqual(fromFile.backupFrom, { kind: 'standby', orPrimary: false });
  assert.equal(fromFile.sources.backupFrom, 'file');
  const fromEnv = loadConfig({ flags: {}, env: { WARDEN_BACKUP_FROM: 'node3' }, cwd });
  assert.deepEqual(fromEnv.backupFrom, { kind: 'member', name: 'node3' });
  await writeFile(file, 'cluster:\n  backup:\n    from: "no such"\n');
  assert.throws(
    () => loadConfig({ flags: {}, env: {}, cwd }),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_CONFIG_INVALID') &&
      String(error.details.field).endsWith('cluster.backup.from'),
  );
  await writeFile(file, 'cluster:\n  backup:\n    form: standby\n');
  assert.throws(
    () => loadConfig({ flags: {}, env: {}, cwd }),
    (error: unknown) => isWardenError(error, 'WARDEN_E_CONFIG_INVALID'),
  );
});

test('the daemon: WARDEN_BACKUP_FROM > cluster entry > daemon section > cluster: > primary', () => {
  const plan = (section: object | undefined, env: NodeJS.ProcessEnv = {}, fromCluster?: string) =>
    resolveDaemonPlan({
      ...(section ? { section } : {}),
      baseDir: '/tmp',
      defaultCluster: {
        repository: { path: '/tmp/repo' },
        ...(fromCluster ? { backupFrom: parseBackupFrom(fromCluster, 'cluster.backup.from') } : {}),
      },
      retention: DEFAULT_RETENTION_POLICY,
      flags: {},
      env,
    }).clusters.map((c) => c.backupFrom);
  assert.deepEqual(plan(undefined), [{ kind: 'primary' }]);
  assert.deepEqual(plan(undefined, {}, 'node2'), [{ kind: 'member', name: 'node2' }]);
  assert.deepEqual(plan({ backup: { from: 'standby' } }, {}, 'node2'), [
    { kind: 'standby', orPrimary: false },
  ]);
  const clusters = {
    backup: { from: 'standby-or-primary' },
    clusters: [
      { name: 'a', url: 'postgres://u@a/db', backup: { from: 'node1' } },
      { name: 'b', url: 'postgres://u@b/db' },
    ],
  };
  assert.deepEqual(plan(clusters), [
    { kind: 'member', name: 'node1' },
    { kind: 'standby', orPrimary: true },
  ]);
  assert.deepEqual(plan(clusters, { WARDEN_BACKUP_FROM: 'primary' }), [
    { kind: 'primary' },
    { kind: 'primary' },
  ]);
  assert.throws(
    () => plan({ clusters: [{ name: 'a', url: 'postgres://u@a/db', backup: { from: 'x y' } }] }),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_CONFIG_INVALID') &&
      error.details.field === 'daemon.clusters.0.backup.from',
  );
});

test('where a backup was taken reads as one line; a hostile record cannot drive the terminal', () => {
  assert.equal(
    describeOrigin({ role: 'standby', member: 'node2', host: '127.0.0.1', port: 5433, replayLagBytes: 0 }),
    'standby node2 (127.0.0.1:5433), 0 bytes behind when chosen',
  );
  assert.equal(describeOrigin({ role: 'primary' }), 'primary');
  assert.equal(describeOrigin(undefined), undefined);
  assert.equal(describeOrigin({ role: 'leader' as 'primary' }), undefined);
  const hostile = describeOrigin({
    role: 'standby',
    member: 'n\u001b[2Jx\nfake line',
    port: 'x' as unknown as number,
  });
  assert.equal(hostile, 'standby n?[2Jx?fake line');
});
