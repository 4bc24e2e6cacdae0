import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;

type Run = CliRun;

const warden = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> =>
  runWarden(args, { cwd: cluster.workDir, env });

const errorCode = (run: Run) => (JSON.parse(run.stdout) as { error: { code: string } }).error.code;

before(async () => {
  cluster = await startCluster();
  await cluster.query('CREATE TABLE t AS SELECT generate_series(1, 1000) AS id');
});
after(async () => cluster?.stop());

test('CLI: encryption is on by default, keygen + --recipient to back up, --identity to restore', async () => {
  const repo = path.join(cluster.workDir, 'enc-repo');
  const db = `${cluster.url()}?sslmode=disable`;
  const noKey = await warden(['backup', '--db', db, '--repo', repo, '--json']);
  assert.equal(noKey.code, 2);
  assert.equal(errorCode(noKey), 'WARDEN_E_KEY_MISSING');

  const keyFile = path.join(cluster.workDir, 'restore-key.txt');
  const keygen = await warden(['repo', 'keygen', '-o', keyFile]);
  assert.equal(keygen.code, 0, keygen.stderr);
  assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
  const recipient = /Public key: (age1\S+)/.exec(keygen.stderr)![1]!;
  assert.match(await readFile(keyFile, 'utf8'), new RegExp(`# public key: ${recipient}`));

  const backup = await warden(['backup', '--db', db, '--repo', repo, '--recipient', recipient, '--json']);
  assert.equal(backup.code, 0, backup.stderr);
  const record = JSON.parse(backup.stdout) as {
    backup: { id: string; encryption: { recipients: string[] } };
  };
  assert.deepEqual(record.backup.encryption.recipients, [recipient]);

  const keys = await warden(['repo', 'keys', '--repo', repo, '--json']);
  assert.equal(keys.code, 0, keys.stderr);
  const uses = (
    JSON.parse(keys.stdout) as { uses: Array<{ what: string; recipients: string[]; availableHere: boolean }> }
  ).uses;
  const backupUse = uses.find((u) => u.what.includes(record.backup.id))!;
  assert.deepEqual(backupUse.recipients, [recipient]);
  assert.equal(backupUse.availableHere, false, 'the backup machine has only the public key');
  assert.ok(uses.some((u) => u.what.startsWith('WAL timeline 1') && u.recipients[0] === recipient));

  const target = path.join(cluster.workDir, 'enc-restore');
  const missing = await warden(['restore', '--latest', '--repo', repo, '--target-dir', target, '--json']);
  assert.equal(missing.code, 2);
  assert.equal(errorCode(missing), 'WARDEN_E_KEY_MISSING');
  assert.ok(!existsSync(target));

  const other = path.join(cluster.workDir, 'other-key.txt');
  await warden(['repo', 'keygen', '-o', other]);
  const wrong = await warden([
    'restore',
    '--latest',
    '--repo',
    repo,
    '--target-dir',
    target,
    '--identity',
    other,
    '--json',
  ]);
  assert.equal(errorCode(wrong), 'WARDEN_E_KEY_MISMATCH');
  assert.ok(!existsSync(target));

  const restored = await warden([
    'restore',
    '--latest',
    '--repo',
    repo,
    '--target-dir',
    target,
    '--identity',
    keyFile,
    '--start',
    '--json',
  ]);
  assert.equal(restored.code, 0, restored.stderr);
  const { port } = JSON.parse(restored.stdout) as { port: number };
  const instance = new LocalInstance({ binaries: cluster.instance.binaries, dataDir: target, port });
  try {
    const url = cluster.url().replace(`:${cluster.port}/`, `:${port}/`);
    const pg = await import('pg');
    const client = new pg.default.Client({ connectionString: url, ssl: false });
    await client.connect();
    const { rows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM t');
    await client.end();
    assert.equal(rows[0]!.n, '1000');
  } finally {
    await instance.stop({ mode: 'immediate' });
  }
});

test('CLI: passphrase mode keeps a passphrase-protected key in the repository', async () => {
  const repo = path.join(cluster.workDir, 'pass-repo');
  const db = `${cluster.url()}?sslmode=disable`;
  const passFile = path.join(cluster.workDir, 'pass.txt');
  await import('node:fs/promises').then((fs) =>
    fs.writeFile(passFile, 'a long passphrase for tests\n', { mode: 0o600 }),
  );
  const backup = await warden([
    'backup',
    '--db',
    db,
    '--repo',
    repo,
    '--passphrase-file',
    passFile,
    '--json',
  ]);
  assert.equal(backup.code, 0, backup.stderr);
  const keys = await warden(['repo', 'keys', '--repo', repo, '--passphrase-file', passFile, '--json']);
  const parsed = JSON.parse(keys.stdout) as {
    uses: Array<{ availableHere: boolean }>;
    passphraseKeys: string[];
  };
  assert.equal(parsed.passphraseKeys.length, 1);
  assert.ok(parsed.uses.every((u) => u.availableHere));
  const target = path.join(cluster.workDir, 'pass-restore');
  const wrongPass = path.join(cluster.workDir, 'wrong.txt');
  await import('node:fs/promises').then((fs) => fs.writeFile(wrongPass, 'not it\n'));
  const wrong = await warden([
    'restore',
    '--latest',
    '--repo',
    repo,
    '--target-dir',
    target,
    '--passphrase-file',
    wrongPass,
    '--json',
  ]);
  assert.equal(errorCode(wrong), 'WARDEN_E_KEY_MISMATCH');
  const restored = await warden([
    'restore',
    '--latest',
    '--repo',
    repo,
    '--target-dir',
    target,
    '--passphrase-file',
    passFile,
    '--json',
  ]);
  assert.equal(restored.code, 0, restored.stderr);
});
