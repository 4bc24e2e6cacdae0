import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { X25519Identity, X25519Recipient } from '../../src/pipeline/encryption/age-keys.ts';
import { decryptBuffer, encryptBuffer } from '../../src/pipeline/encryption/age-stream.ts';
import { sha256 } from '../../src/pipeline/hashing.ts';
import { signRecord } from '../../src/pipeline/signing/record-signature.ts';
import { SigningKey } from '../../src/pipeline/signing/signing-keys.ts';
import { readSigningKeyFile } from '../../src/pipeline/signing/signing-keyring.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import type { BackupRecord } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { verifyRestore } from '../../src/verify/restore-check.ts';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

const run = promisify(execFile);

let cluster: TestCluster;
let identity: X25519Identity;
/** A repository with one backup written by the CLI (signed with ./.warden/signing-key); tests copy it. */
let pristine: string;
let backupId: string;

const warden = (args: string[]): Promise<CliRun> => runWarden(args, { cwd: cluster.workDir });
const db = () => `${cluster.url()}?sslmode=disable`;

function errorOf(result: CliRun): { code: string; details: Record<string, unknown> } {
  return (JSON.parse(result.stdout) as { error: { code: string; details: Record<string, unknown> } }).error;
}

async function readJson<T>(repo: string, key: string): Promise<T> {
  return JSON.parse(await readFile(path.join(repo, key), 'utf8')) as T;
}

async function writeJson(repo: string, key: string, value: unknown): Promise<void> {
  await writeFile(path.join(repo, key), `${JSON.stringify(value, null, 2)}\n`);
}

async function copyOf(name: string): Promise<string> {
  const repo = path.join(cluster.workDir, name);
  await cp(pristine, repo, { recursive: true });
  return repo;
}

async function emptyTarget(name: string): Promise<string> {
  const dir = path.join(cluster.workDir, name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * What someone with write access to the repository (and no signing key) can do: replace
 * base.tar.zst with an archive of their own, whose postgresql.auto.conf runs a command, encrypt it
 * to the recipient backup.json names, and update the archive's size and SHA-256 in backup.json.
 * (The test decrypts the real archive to start from a valid data directory; an attacker would
 * start from any base backup of their own.)
 */
async function forgeBackup(repo: string, id: string, marker: string): Promise<void> {
  const recordKey = `backups/${id}/backup.json`;
  const record = await readJson<BackupRecord>(repo, recordKey);
  const archive = record.archives.find((a) => a.archive === 'base.tar')!;
  const work = await mkdtemp(path.join(cluster.workDir, 'forge-'));
  try {
    const compressed = await decryptBuffer(await readFile(path.join(repo, archive.key)), {
      identities: [identity],
      object: archive.key,
    });
    await writeFile(path.join(work, 'base.tar.zst'), compressed);
    await run('zstd', ['-q', '-d', path.join(work, 'base.tar.zst'), '-o', path.join(work, 'base.tar')]);
    const tree = path.join(work, 'tree');
    await mkdir(tree);
    await run('tar', ['-xf', path.join(work, 'base.tar'), '-C', tree]);
    await appendFile(
      path.join(tree, 'postgresql.auto.conf'),
      `archive_mode = on\narchive_command = 'touch ${marker}'\n`,
    );
    await run('tar', ['-cf', path.join(work, 'forged.tar'), '-C', tree, ...(await readdir(tree))]);
    await run('zstd', ['-q', path.join(work, 'forged.tar'), '-o', path.join(work, 'forged.tar.zst')]);
    const recipient = X25519Recipient.parse(record.encryption!.recipients[0]!);
    const stored = await encryptBuffer(await readFile(path.join(work, 'forged.tar.zst')), [recipient]);
    await writeFile(path.join(repo, archive.key), stored);
    archive.size = stored.length;
    archive.sha256 = sha256(stored);
    archive.rawSize = (await readFile(path.join(work, 'forged.tar'))).length;
    // The signature stays as it was: the attacker holds no signing key.
    await writeJson(repo, recordKey, record);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Every JSON record of a repository, by key. */
async function recordKeys(repo: string): Promise<string[]> {
  const keys: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(path.join(repo, dir), { withFileTypes: true })) {
      const key = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(key);
      // Audit records are hash-chained under the signed audit/head.json rather than signed each.
      else if (key.endsWith('.json') && !key.startsWith('locks/') && !key.startsWith('audit/records/'))
        keys.push(key);
    }
  };
  await walk('');
  return keys;
}

/** Makes a repository look like one written before signing: no signature anywhere. */
async function stripSignatures(repo: string): Promise<void> {
  for (const key of await recordKeys(repo)) {
    const record = await readJson<Record<string, unknown>>(repo, key);
    delete record.signature;
    await writeJson(repo, key, record);
  }
}

before(async () => {
  cluster = await startCluster();
  await cluster.query('CREATE TABLE t AS SELECT generate_series(1, 1000) AS id');
  const keygen = await warden(['repo', 'keygen', '-o', '.warden/identity.txt']);
  assert.equal(keygen.code, 0, keygen.stderr);
  identity = X25519Identity.parse(
    (await readFile(path.join(cluster.workDir, '.warden/identity.txt'), 'utf8')).split('\n')[2]!,
  );
  pristine = path.join(cluster.workDir, 'pristine');
  const backup = await warden(['backup', '--db', db(), '--repo', pristine, '--json']);
  assert.equal(backup.code, 0, backup.stderr);
  assert.match(backup.stderr, /created signing key \.warden\/signing-key \(public key wardensig1/);
  backupId = (JSON.parse(backup.stdout) as { backup: { id: string } }).backup.id;
});
after(async () => cluster?.stop());

test('the signing key is created once, mode 0600, and every record the writer commits is signed', async () => {
  const { stat } = await import('node:fs/promises');
  assert.equal((await stat(path.join(cluster.workDir, '.warden/signing-key'))).mode & 0o777, 0o600);
  const keys = await recordKeys(pristine);
  assert.ok(keys.includes('warden-repo.json'));
  assert.ok(keys.some((k) => /^wal\/00000001\/[0-9A-F]{24}\.json$/.test(k)));
  const id = (await readSigningKeyFile(path.join(cluster.workDir, '.warden/signing-key'))).id;
  for (const key of keys) {
    const record = await readJson<{ signature?: { alg: string; key: string } }>(pristine, key);
    assert.deepEqual([key, record.signature?.alg, record.signature?.key], [key, 'ed25519', id]);
  }
  const again = await warden(['backup', '--db', db(), '--repo', await copyOf('second-backup')]);
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /created signing key/);
});

test('a forged backup (archive re-encrypted to the stored recipient, backup.json updated) is refused by restore, verify and the daemon verification before anything is extracted', async () => {
  const repo = await copyOf('forged');
  const marker = path.join(cluster.workDir, 'forged-archive-command-ran');
  await forgeBackup(repo, backupId, marker);
  const object = `backups/${backupId}/backup.json`;

  const target = await emptyTarget('forged-target');
  const restored = await warden([
    'restore',
    '--latest',
    '--repo',
    repo,
    '--target-dir',
    target,
    '--start',
    '--json',
  ]);
  assert.equal(restored.code, 5, restored.stdout);
  assert.equal(errorOf(restored).code, 'WARDEN_E_SIGNATURE_INVALID');
  assert.equal(errorOf(restored).details.object, object);
  assert.deepEqual(await readdir(target), [], 'the target directory is untouched');

  const allowed = await warden([
    'restore',
    '--latest',
    '--repo',
    repo,
    '--target-dir',
    target,
    '--allow-unsigned',
    '--json',
  ]);
  assert.equal(
    errorOf(allowed).code,
    'WARDEN_E_SIGNATURE_INVALID',
    '--allow-unsigned never lets a bad signature through',
  );
  assert.deepEqual(await readdir(target), []);

  const verified = await warden(['verify', '--repo', repo, '--json']);
  assert.equal(verified.code, 5);
  const report = JSON.parse(verified.stdout) as {
    problems: Array<{ kind: string; object: string; details?: { code?: string } }>;
    backups: Array<{ id: string; restorable: boolean }>;
  };
  const problem = report.problems.find((p) => p.kind === 'signature');
  assert.deepEqual([problem?.object, problem?.details?.code], [object, 'WARDEN_E_SIGNATURE_INVALID']);
  assert.equal(report.backups.find((b) => b.id === backupId)?.restorable, false);

  // The daemon's scheduled verification and drills restore through verifyRestore.
  const signer = await readSigningKeyFile(path.join(cluster.workDir, '.warden/signing-key'));
  const scratchDir = await emptyTarget('forged-scratch');
  const verification = await verifyRestore({
    store: new FsObjectStore(repo),
    connection: { ...connectionFromUrl(cluster.url()), tls: 'disable' },
    target: { kind: 'latest' },
    scratch: { scratchDir },
    keys: { identities: [identity], trust: { keys: new Map([[signer.id, signer.publicKey]]) } },
  });
  assert.equal(verification.passed, false);
  assert.deepEqual(
    verification.checks.map((c) => [c.name, c.status, c.error?.code]),
    [['prepare', 'failed', 'WARDEN_E_SIGNATURE_INVALID']],
  );
  assert.deepEqual(await readdir(scratchDir), [], 'no scratch copy was written');
  assert.equal(existsSync(marker), false, 'the forged archive_command never ran');
});

test('a tampered WAL segment record is refused by restore and reported by verify', async () => {
  const repo = await copyOf('wal-tampered');
  const segments = (await recordKeys(repo)).filter((k) => /^wal\/00000001\/[0-9A-F]{24}\.json$/.test(k));
  const key = segments.at(-1)!;
  const record = await readJson<{ commits: number }>(repo, key);
  record.commits += 1;
  await writeJson(repo, key, record);
  const target = await emptyTarget('wal-tampered-target');
  const restored = await warden(['restore', '--latest', '--repo', repo, '--target-dir', target, '--json']);
  assert.equal(errorOf(restored).code, 'WARDEN_E_SIGNATURE_INVALID');
  assert.equal(errorOf(restored).details.object, key);
  assert.deepEqual(await readdir(target), []);
  const verified = JSON.parse((await warden(['verify', '--repo', repo, '--json'])).stdout) as {
    problems: Array<{ kind: string; object: string }>;
  };
  assert.ok(verified.problems.some((p) => p.kind === 'signature' && p.object === key));
});

test('a backup signed by an unknown key is refused until that key is trusted', async () => {
  const repo = await copyOf('unknown-key');
  const key = `backups/${backupId}/backup.json`;
  const meta = await readJson<{ systemId: string }>(repo, 'warden-repo.json');
  const stranger = SigningKey.generate();
  await writeJson(
    repo,
    key,
    signRecord(await readJson<object>(repo, key), { object: key, systemId: meta.systemId }, stranger),
  );
  const target = await emptyTarget('unknown-key-target');
  const refused = await warden(['restore', '--latest', '--repo', repo, '--target-dir', target, '--json']);
  assert.equal(errorOf(refused).code, 'WARDEN_E_SIGNATURE_UNTRUSTED');
  assert.deepEqual([errorOf(refused).details.object, errorOf(refused).details.key], [key, stranger.id]);
  assert.deepEqual(await readdir(target), []);
  const keys = JSON.parse((await warden(['repo', 'keys', '--repo', repo, '--json'])).stdout) as {
    signingKeys: Array<{ key: string; trustedHere: boolean }>;
  };
  assert.ok(keys.signingKeys.some((k) => k.key === stranger.id && !k.trustedHere));
  const trusted = await warden([
    'restore',
    '--latest',
    '--repo',
    repo,
    '--target-dir',
    target,
    '--trust-key',
    stranger.id,
    '--json',
  ]);
  assert.equal(trusted.code, 0, trusted.stdout);
});

test('an unsigned (pre-signing) repository restores only with --allow-unsigned until `repo sign --yes` signs it', async () => {
  const repo = await copyOf('legacy');
  await stripSignatures(repo);
  const target = await emptyTarget('legacy-target');
  const refused = await warden(['restore', '--latest', '--repo', repo, '--target-dir', target, '--json']);
  assert.equal(errorOf(refused).code, 'WARDEN_E_UNSIGNED');
  assert.equal(errorOf(refused).details.object, 'warden-repo.json');
  assert.deepEqual(await readdir(target), []);

  const allowed = await warden([
    'restore',
    '--latest',
    '--repo',
    repo,
    '--target-dir',
    target,
    '--allow-unsigned',
    '--json',
  ]);
  assert.equal(allowed.code, 0, allowed.stdout);
  assert.match(
    allowed.stderr,
    /warning: warden-repo\.json is unsigned; accepted because of --allow-unsigned/,
  );
  await rm(target, { recursive: true });

  // A damaged object is found, and its record left unsigned.
  const damaged = await copyOf('legacy-damaged');
  await stripSignatures(damaged);
  const segment = (await recordKeys(damaged))
    .filter((k) => /^wal\/00000001\/[0-9A-F]{24}\.json$/.test(k))
    .at(-1)!;
  const data = path.join(damaged, segment.replace(/\.json$/, '.zst'));
  const bytes = await readFile(data);
  bytes[bytes.length >> 1]! ^= 0x01;
  await writeFile(data, bytes);
  const partly = await warden(['repo', 'sign', '--yes', '--repo', damaged, '--json']);
  assert.equal(partly.code, 5);
  const partlyReport = JSON.parse(partly.stdout) as { failed: Array<{ object: string }>; toSign: string[] };
  assert.deepEqual(
    partlyReport.failed.map((f) => f.object),
    [segment],
  );
  assert.equal((await readJson<{ signature?: unknown }>(damaged, segment)).signature, undefined);

  const dry = await warden(['repo', 'sign', '--repo', repo, '--json']);
  assert.equal(dry.code, 2, 'without --yes nothing is signed');
  const plan = JSON.parse(dry.stdout) as { applied: boolean; toSign: string[] };
  assert.equal(plan.applied, false);
  assert.ok(plan.toSign.includes(`backups/${backupId}/backup.json`));
  assert.equal((await readJson<{ signature?: unknown }>(repo, 'warden-repo.json')).signature, undefined);

  const signed = await warden(['repo', 'sign', '--yes', '--repo', repo, '--json']);
  assert.equal(signed.code, 0, signed.stdout);
  assert.deepEqual((JSON.parse(signed.stdout) as { toSign: string[] }).toSign.sort(), plan.toSign.sort());
  const restored = await warden(['restore', '--latest', '--repo', repo, '--target-dir', target, '--json']);
  assert.equal(restored.code, 0, restored.stdout);
  assert.doesNotMatch(restored.stderr, /unsigned/);
  const verified = await warden(['verify', '--repo', repo, '--json']);
  assert.equal(verified.code, 0, verified.stdout);
});

test('rotation: backups signed with key A and then key B both restore while both are trusted', async () => {
  const repo = path.join(cluster.workDir, 'rotation');
  const keyA = path.join(cluster.workDir, 'keys/a.key');
  const keyB = path.join(cluster.workDir, 'keys/b.key');
  for (const file of [keyA, keyB]) {
    const made = await warden(['repo', 'keygen', '--signing', '-o', file, '--json']);
    assert.equal(made.code, 0, made.stderr);
  }
  const idA = (await readSigningKeyFile(keyA)).id;
  const idB = (await readSigningKeyFile(keyB)).id;
  const first = await warden(['backup', '--db', db(), '--repo', repo, '--signing-key', keyA, '--json']);
  assert.equal(first.code, 0, first.stderr);
  await cluster.query('INSERT INTO t SELECT generate_series(1001, 2000)');
  const second = await warden(['backup', '--db', db(), '--repo', repo, '--signing-key', keyB, '--json']);
  assert.equal(second.code, 0, second.stderr);
  const ids = [first, second].map((r) => (JSON.parse(r.stdout) as { backup: { id: string } }).backup.id);

  for (const id of ids) {
    const target = path.join(cluster.workDir, `rotation-${id}`);
    const restored = await warden([
      'restore',
      '--backup',
      id,
      '--repo',
      repo,
      '--target-dir',
      target,
      '--signing-key',
      keyB,
      '--trust-key',
      idA,
      '--json',
    ]);
    assert.equal(restored.code, 0, restored.stdout);
  }
  const onlyB = await warden([
    'restore',
    '--backup',
    ids[0]!,
    '--repo',
    repo,
    '--target-dir',
    path.join(cluster.workDir, 'rotation-only-b'),
    '--signing-key',
    keyB,
    '--json',
  ]);
  assert.equal(
    errorOf(onlyB).code,
    'WARDEN_E_SIGNATURE_UNTRUSTED',
    'A dropped from the trust set: its records are refused',
  );
  const listed = JSON.parse(
    (await warden(['repo', 'keys', '--repo', repo, '--signing-key', keyB, '--trust-key', idA, '--json']))
      .stdout,
  ) as {
    uses: Array<{ what: string; signedBy?: string }>;
    signingKeys: Array<{ key: string; trustedHere: boolean }>;
  };
  assert.deepEqual(
    ids.map((id) => listed.uses.find((u) => u.what.startsWith(`backup ${id}`))?.signedBy),
    [idA, idB],
  );
  assert.deepEqual(
    listed.signingKeys.map((k) => k.trustedHere),
    [true, true],
  );
});

test('a logical dump is signed; a changed dump.json is refused before the target database is created', async () => {
  const repo = await copyOf('dumps');
  const made = await warden(['dump', '--database', 'postgres', '--db', db(), '--repo', repo, '--json']);
  assert.equal(made.code, 0, made.stderr);
  const id = (JSON.parse(made.stdout) as { dump: { id: string } }).dump.id;
  const key = `dumps/${id}/dump.json`;
  const record = await readJson<{ signature?: { key: string }; database: string }>(repo, key);
  assert.equal(
    record.signature?.key,
    (await readSigningKeyFile(path.join(cluster.workDir, '.warden/signing-key'))).id,
  );
  record.database = 'other';
  await writeJson(repo, key, record);
  const refused = await warden([
    'restore',
    '--dump',
    id,
    '--target-database',
    'from_forged_dump',
    '--db',
    db(),
    '--repo',
    repo,
    '--json',
  ]);
  assert.equal(errorOf(refused).code, 'WARDEN_E_SIGNATURE_INVALID');
  assert.equal(errorOf(refused).details.object, key);
  const exists = await cluster.query("SELECT 1 FROM pg_database WHERE datname = 'from_forged_dump'");
  assert.equal(exists.length, 0);
});

test('repo copy keeps the signatures, and a forged source is not copied', async () => {
  const copy = path.join(cluster.workDir, 'copied');
  const copied = await warden(['repo', 'copy', '--repo', pristine, '--to', copy, '--json']);
  assert.equal(copied.code, 0, copied.stdout);
  // (The copy takes archived WAL only, not the partial segment a restore --latest would need.)
  const keys = JSON.parse((await warden(['repo', 'keys', '--repo', copy, '--json'])).stdout) as {
    uses: Array<{ what: string; signature: string }>;
  };
  assert.ok(keys.uses.some((u) => u.what.startsWith(`backup ${backupId}`)));
  assert.deepEqual([...new Set(keys.uses.map((u) => u.signature))], ['trusted']);
  assert.equal(
    (await readJson<{ signature?: unknown }>(copy, 'warden-repo.json')).signature !== undefined,
    true,
  );

  const forged = await copyOf('copy-forged');
  const key = `backups/${backupId}/backup.json`;
  const record = await readJson<{ durationMs: number }>(forged, key);
  record.durationMs += 1;
  await writeJson(forged, key, record);
  const target = path.join(cluster.workDir, 'copy-of-forged');
  const refused = await warden(['repo', 'copy', '--repo', forged, '--to', target, '--json']);
  assert.equal(errorOf(refused).code, 'WARDEN_E_SIGNATURE_INVALID');
  assert.equal(existsSync(target), false, 'nothing was written to the copy target');
});
