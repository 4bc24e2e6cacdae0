import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, lstat, mkdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseIdentities } from '../../src/pipeline/encryption/age-keys.ts';
import { serverRunAs } from '../../src/postgres/os-user.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { snapshotTree } from '../faults/helpers.ts';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { forgeArchive, readArchiveTar } from '../harness/forge-backup.ts';
import { readSigningKeyFile } from '../../src/pipeline/signing/signing-keyring.ts';
import type { SigningKey } from '../../src/pipeline/signing/signing-keys.ts';
import { hostileTar, withoutEnd, type TarEntry } from '../harness/hostile-tar.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

/**
 * The hostile-archive suite through the real CLI: a real, encrypted backup in a filesystem
 * repository whose base.tar.zst is replaced by a crafted archive — encrypted to the recipient the
 * repository names and with backup.json's size and sha256 updated, so checksums and decryption
 * pass and the extractor is the only defence. `warden restore` must fail with
 * WARDEN_E_REPO_CORRUPT (exit 5) naming the entry and the problem, leave no target behind, and
 * leave the directory the archive aims at untouched.
 */

let cluster: TestCluster;
let repo: string;
let keyFile: string;
let backupId: string;
let cases = 0;
/** The backup writer's signing key, as if stolen: the forgeries carry valid signatures. */
let signWith: SigningKey;

const warden = (args: string[]): Promise<CliRun> => runWarden(args, { cwd: cluster.workDir });

before(async () => {
  cluster = await startCluster();
  await cluster.query('CREATE TABLE t AS SELECT generate_series(1, 1000) AS id');
  repo = path.join(cluster.workDir, 'repo');
  keyFile = path.join(cluster.workDir, 'key.txt');
  const keygen = await warden(['repo', 'keygen', '-o', keyFile]);
  assert.equal(keygen.code, 0, keygen.stderr);
  const recipient = /Public key: (age1\S+)/.exec(keygen.stderr)![1]!;
  const db = `${cluster.url()}?sslmode=disable`;
  const backup = await warden(['backup', '--db', db, '--repo', repo, '--recipient', recipient, '--json']);
  assert.equal(backup.code, 0, backup.stderr);
  backupId = (JSON.parse(backup.stdout) as { backup: { id: string } }).backup.id;
  signWith = await readSigningKeyFile(path.join(cluster.workDir, '.warden', 'signing-key'));
});
after(async () => cluster?.stop());

interface Case {
  /** A copy of the repository, its backup forged. */
  repo: string;
  store: FsObjectStore;
  /** Where the restore goes (does not exist yet). */
  target: string;
  /** What the archive aims at: a directory beside the target, with `victim` in it. */
  outside: string;
  victim: string;
}

async function newCase(): Promise<Case> {
  cases += 1;
  const copy = path.join(cluster.workDir, `repo-${cases}`);
  await cp(repo, copy, { recursive: true });
  const outside = path.join(cluster.workDir, `outside-${cases}`);
  await mkdir(outside);
  await writeFile(path.join(outside, 'victim'), 'original\n');
  return {
    repo: copy,
    store: new FsObjectStore(copy),
    target: path.join(cluster.workDir, `target-${cases}`),
    outside,
    victim: path.join(outside, 'victim'),
  };
}

/** Forges base.tar (and, for `tablespace`, a tablespace 16999 the links may claim to be). */
async function forge(c: Case, entries: TarEntry[], options: { tablespace?: boolean } = {}): Promise<void> {
  const prefix: TarEntry[] = [
    { name: 'PG_VERSION', data: '15\n' },
    { name: 'base/', type: 'directory' },
    { name: 'base/1/1259', data: Buffer.alloc(8192, 7) },
  ];
  if (options.tablespace) {
    await forgeArchive(c.store, backupId, '16999.tar', hostileTar([]), {
      tablespace: { oid: '16999', location: c.outside },
      signWith,
    });
  }
  await forgeArchive(c.store, backupId, 'base.tar', hostileTar([...prefix, ...entries]), { signWith });
}

async function restoreRefused(c: Case, expected: { entry: string; problem: string }): Promise<void> {
  const before = await snapshotTree(c.outside);
  const run = await warden([
    'restore',
    '--latest',
    '--repo',
    c.repo,
    '--target-dir',
    c.target,
    '--identity',
    keyFile,
    '--json',
  ]);
  assert.equal(run.code, 5, `exit status (stderr: ${run.stderr})`);
  const error = (JSON.parse(run.stdout) as { error: { code: string; details: Record<string, string> } })
    .error;
  assert.equal(error.code, 'WARDEN_E_REPO_CORRUPT');
  assert.deepEqual(error.details, {
    object: `backups/${backupId}/base.tar.zst`,
    entry: expected.entry,
    problem: expected.problem,
  });
  assert.deepEqual(await snapshotTree(c.outside), before, 'nothing outside the target changed');
  assert.equal(await readFile(c.victim, 'utf8'), 'original\n');
  assert.equal(existsSync(c.target), false, 'the target is removed');
  assert.equal(existsSync(`${c.target}_tablespaces`), false, 'and its tablespaces directory');
  await rm(c.repo, { recursive: true, force: true });
}

describe('warden restore refuses a forged base archive that reaches outside the target', () => {
  test('escape 1: a directory symlink, then a file written through it', async () => {
    const c = await newCase();
    await forge(
      c,
      [
        { name: 'pg_tblspc/16999', type: 'symlink', linkname: c.outside },
        { name: 'pg_tblspc/16999/authorized_keys', data: 'ssh-ed25519 AAAA attacker\n' },
      ],
      { tablespace: true },
    );
    await restoreRefused(c, { entry: 'pg_tblspc/16999/authorized_keys', problem: 'symlink-in-path' });
    assert.equal(existsSync(path.join(c.outside, 'authorized_keys')), false);
  });

  test('escape 2: a relative symlink, then a file written through it', async () => {
    const c = await newCase();
    const relative = path.relative(path.join(c.target, 'pg_tblspc'), c.outside);
    await forge(
      c,
      [
        { name: 'pg_tblspc/16999', type: 'symlink', linkname: relative },
        { name: 'pg_tblspc/16999/authorized_keys', data: 'x' },
      ],
      { tablespace: true },
    );
    await restoreRefused(c, { entry: 'pg_tblspc/16999', problem: 'tablespace-link-relative' });
  });

  test('escape 3: a symlink, then a new directory through it', async () => {
    const c = await newCase();
    await forge(
      c,
      [
        { name: 'pg_tblspc/16999', type: 'symlink', linkname: c.outside },
        { name: 'pg_tblspc/16999/newdir/', type: 'directory' },
      ],
      { tablespace: true },
    );
    await restoreRefused(c, { entry: 'pg_tblspc/16999/newdir/', problem: 'symlink-in-path' });
    assert.equal(existsSync(path.join(c.outside, 'newdir')), false);
  });

  test('escape 4: a symlink to a file, then the file overwritten', async () => {
    const c = await newCase();
    await forge(
      c,
      [
        { name: 'pg_tblspc/16999', type: 'symlink', linkname: c.victim },
        { name: 'pg_tblspc/16999', data: 'overwritten\n' },
      ],
      { tablespace: true },
    );
    await restoreRefused(c, { entry: 'pg_tblspc/16999', problem: 'duplicate-entry' });
  });

  test('a hard link to a file outside', async () => {
    const c = await newCase();
    await forge(c, [
      { name: 'base/1/2619', type: 'hardlink', linkname: c.victim },
      { name: 'base/1/2619', data: 'overwritten\n' },
    ]);
    await restoreRefused(c, { entry: 'base/1/2619', problem: 'hard-link' });
  });

  test('a device file', async () => {
    const c = await newCase();
    await forge(c, [{ name: 'base/1/mem', type: 'chardev' }]);
    await restoreRefused(c, { entry: 'base/1/mem', problem: 'device-file' });
  });

  test('an absolute name', async () => {
    const c = await newCase();
    const name = path.join(c.outside, 'planted');
    await forge(c, [{ name, data: 'x' }]);
    await restoreRefused(c, { entry: name, problem: 'absolute-path' });
  });

  test('a .. component', async () => {
    const c = await newCase();
    const name = `base/../../${path.basename(c.outside)}/planted`;
    await forge(c, [{ name, data: 'x' }]);
    await restoreRefused(c, { entry: name, problem: 'parent-component' });
  });

  test('a tablespace link pointing inside the target', async () => {
    const c = await newCase();
    await forge(c, [{ name: 'pg_tblspc/16999', type: 'symlink', linkname: path.join(c.target, 'global') }], {
      tablespace: true,
    });
    await restoreRefused(c, { entry: 'pg_tblspc/16999', problem: 'tablespace-link-inside-target' });
  });
});

test('a tablespace OID in backup.json that is not a number never becomes a path', async () => {
  const c = await newCase();
  // Would resolve to DIR_tablespaces/../outside-N: the directory beside the target.
  const oid = `../${path.basename(c.outside)}`;
  await forgeArchive(c.store, backupId, '16999.tar', hostileTar([{ name: 'planted', data: 'x' }]), {
    tablespace: { oid, location: c.outside },
    signWith,
  });
  const run = await warden([
    'restore',
    '--latest',
    '--repo',
    c.repo,
    '--target-dir',
    c.target,
    '--identity',
    keyFile,
    '--json',
  ]);
  assert.equal(run.code, 5, run.stderr);
  const error = (JSON.parse(run.stdout) as { error: { code: string; details: Record<string, string> } })
    .error;
  assert.equal(error.code, 'WARDEN_E_REPO_CORRUPT');
  assert.deepEqual(error.details, {
    object: `backups/${backupId}/backup.json`,
    entry: oid,
    problem: 'tablespace-oid-invalid',
  });
  assert.deepEqual(Object.keys(await snapshotTree(c.outside)), ['victim']);
  assert.equal(existsSync(c.target), false);
  await rm(c.repo, { recursive: true, force: true });
});

test('a tablespace link outside the target is restored as a link, and a restore as root never chowns through it', async (t) => {
  const runAs = serverRunAs();
  if (!runAs) return t.skip('needs root: chownTree only runs then');
  const c = await newCase();
  const identities = parseIdentities(await readFile(keyFile, 'utf8'));
  // The real base archive, with a link for a tablespace the (forged) record now names.
  const base = await readArchiveTar(c.store, backupId, 'base.tar', identities);
  await forgeArchive(
    c.store,
    backupId,
    '16999.tar',
    hostileTar([{ name: 'PG_15_202209061/', type: 'directory' }]),
    { tablespace: { oid: '16999', location: c.outside }, signWith },
  );
  await forgeArchive(
    c.store,
    backupId,
    'base.tar',
    Buffer.concat([
      withoutEnd(base),
      hostileTar([{ name: 'pg_tblspc/16999', type: 'symlink', linkname: c.victim }]),
    ]),
    { signWith },
  );
  const owner = async (file: string) => {
    const info = await stat(file);
    return [info.uid, info.gid, info.mode];
  };
  const before = [await owner(c.victim), await owner(c.outside)];
  assert.notEqual(before[0]![0], runAs.uid);
  const run = await warden([
    'restore',
    '--latest',
    '--repo',
    c.repo,
    '--target-dir',
    c.target,
    '--identity',
    keyFile,
    '--json',
  ]);
  assert.equal(run.code, 0, run.stderr);
  const link = path.join(c.target, 'pg_tblspc/16999');
  assert.equal(await readlink(link), c.victim);
  assert.equal((await lstat(link)).uid, runAs.uid, 'the link itself belongs to the server user');
  assert.deepEqual([await owner(c.victim), await owner(c.outside)], before, 'what it points to does not');
  assert.equal(await readFile(c.victim, 'utf8'), 'original\n');
  assert.equal(
    await readFile(path.join(c.target, 'tablespace_map'), 'utf8'),
    `16999 ${c.target}_tablespaces/16999\n`,
  );
  await rm(c.repo, { recursive: true, force: true });
});

test('an archive map naming an outside location, in a backup without tablespaces, is emptied', async () => {
  const c = await newCase();
  await forge(c, [{ name: 'tablespace_map', data: `16999 ${c.outside}\n` }]);
  const run = await warden([
    'restore',
    '--latest',
    '--repo',
    c.repo,
    '--target-dir',
    c.target,
    '--identity',
    keyFile,
    '--json',
  ]);
  assert.equal(run.code, 0, run.stderr);
  // PostgreSQL would create pg_tblspc links to whatever the map names when it starts.
  assert.equal(await readFile(path.join(c.target, 'tablespace_map'), 'utf8'), '');
  await rm(c.repo, { recursive: true, force: true });
});
