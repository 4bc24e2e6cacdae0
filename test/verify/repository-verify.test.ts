import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { BackupReport } from '../../src/backup/base-backup.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory, segmentDataKey, type SegmentRecord } from '../../src/repository/wal-archive.ts';
import { verifyRepository } from '../../src/verify/repository-verify.ts';
import { parseLsn, segmentStart } from '../../src/wal/lsn.ts';
import { backupWithWalTail, flipByte } from '../faults/helpers.ts';
import { forgeArchive, readArchiveTar } from '../harness/forge-backup.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

let cluster: TestCluster;
let repoDir: string;
let store: FsObjectStore;
let backup: BackupReport['backup'];
/** Segments from the backup's start on, in order. */
let segments: SegmentRecord[];
/** The partial segment the catch-up left behind (checksummed frames: an unencrypted repository). */
let partialKeys: string[];

before(async () => {
  cluster = await startCluster();
  repoDir = path.join(cluster.workDir, 'repo');
  store = new FsObjectStore(repoDir);
  backup = await backupWithWalTail(cluster, store, 20000);
  const repository = await Repository.open(store);
  const first = segmentStart(parseLsn(backup.startLsn), repository.meta.walSegmentSize);
  const inventory = await readWalInventory(repository);
  segments = inventory.segments.get(1)!.filter((s) => parseLsn(s.startLsn) >= first);
  partialKeys = inventory.partials.filter((p) => p.validBytes > 0).map((p) => p.key);
});
after(async () => {
  await cluster?.stop();
});

test('a clean repository verifies with no problems, every manifest file checked', async () => {
  const report = await verifyRepository({ store });
  assert.deepEqual(report.problems, []);
  assert.equal(report.ok, true);
  assert.equal(report.checked.backups, 1);
  assert.ok(report.checked.manifestFiles > 500, `manifest files checked: ${report.checked.manifestFiles}`);
  assert.ok(report.checked.walSegments >= 4);
  assert.deepEqual(
    report.backups.map((b) => [b.id, b.restorable]),
    [[backup.id, true]],
  );
  assert.ok(report.window?.earliest);
});

test('flipping any single byte of any object is detected and the object named (40 random positions)', async () => {
  const keys = [
    ...backup.archives.map((a) => a.key),
    backup.manifest.key,
    `backups/${backup.id}/backup.json`,
    ...segments.map((s) => segmentDataKey(1, s.segment)),
    ...segments.map((s) => segmentDataKey(1, s.segment).replace(/\.zst$/, '.json')),
  ];
  const positions: Array<{ key: string; offset: number }> = [];
  assert.equal(partialKeys.length, 1, 'the catch-up leaves one partial segment');
  keys.push(...partialKeys);
  // Every kind of object at least once, then random ones.
  for (const key of keys.slice(0, 4)) positions.push({ key, offset: -1 });
  positions.push({ key: keys.at(-2)!, offset: -1 }, { key: keys.at(-1)!, offset: -1 });
  while (positions.length < 40) positions.push({ key: keys[randomInt(keys.length)]!, offset: -1 });
  for (const position of positions) {
    const file = path.join(repoDir, position.key);
    const offset = randomInt((await stat(file)).size);
    await flipByte(file, offset);
    try {
      const report = await verifyRepository({ store });
      assert.equal(report.ok, false, `flip of ${position.key} at ${offset} went unnoticed`);
      assert.ok(
        report.problems.some((p) => p.object === position.key),
        `flip of ${position.key} at ${offset}: problems name ${report.problems.map((p) => p.object).join(', ')}`,
      );
    } finally {
      await flipByte(file, offset);
    }
  }
  assert.equal((await verifyRepository({ store })).ok, true, 'every byte was put back');
});

test('a missing archive names it and the backup it makes unrestorable', async () => {
  const key = backup.archives[0]!.key;
  const file = path.join(repoDir, key);
  await rename(file, `${file}.away`);
  try {
    const report = await verifyRepository({ store });
    const problem = report.problems.find((p) => p.object === key);
    assert.equal(problem?.kind, 'missing');
    assert.deepEqual(problem.backups, [backup.id]);
    assert.match(problem.breaks, /unrestorable/);
    assert.equal(report.backups[0]!.restorable, false);
  } finally {
    await rename(`${file}.away`, file);
  }
});

test('a missing WAL segment is named as a gap that makes PITR impossible between two points', async () => {
  const victim = segments.at(-2)!;
  const data = segmentDataKey(1, victim.segment);
  const record = data.replace(/\.zst$/, '.json');
  for (const key of [data, record]) await rename(path.join(repoDir, key), path.join(repoDir, `${key}.away`));
  try {
    const report = await verifyRepository({ store });
    const gap = report.problems.find((p) => p.kind === 'wal-gap');
    assert.ok(gap, JSON.stringify(report.problems));
    assert.equal(gap.object, data);
    assert.deepEqual(gap.details?.segments, [victim.segment]);
    assert.match(gap.breaks, /^PITR impossible between .+ and .+/);
    assert.deepEqual(gap.backups, [backup.id]);
    // The backup itself is still restorable (to before the gap).
    assert.equal(report.backups[0]!.restorable, true);
    assert.equal(report.backups[0]!.walContinuousTo, victim.startLsn);
  } finally {
    for (const key of [data, record])
      await rename(path.join(repoDir, `${key}.away`), path.join(repoDir, key));
  }
});

test('a segment whose data is gone while its record stays is named missing, with the gap it leaves', async () => {
  const victim = segments[1]!;
  const data = segmentDataKey(1, victim.segment);
  const file = path.join(repoDir, data);
  await rename(file, `${file}.away`);
  try {
    const report = await verifyRepository({ store });
    const missing = report.problems.find((p) => p.object === data && p.kind === 'missing');
    assert.ok(missing, JSON.stringify(report.problems));
    assert.match(missing.breaks, /PITR impossible|unrestorable/);
    assert.ok(report.problems.some((p) => p.kind === 'wal-gap' && p.object === data));
  } finally {
    await rename(`${file}.away`, file);
  }
});

test('warden verify exits 0 on a clean repository and 5 with WARDEN_E_REPO_VERIFY_PROBLEMS on a damaged one', async () => {
  // The library wrote this repository without a signing key: its records are unsigned, which the
  // CLI reports unless told to accept them (signatures are tested in test/security/).
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile(
        'node',
        [path.resolve('bin/warden.js'), ...args, '--allow-unsigned'],
        { cwd: cluster.workDir },
        (error, stdout) =>
          resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout }),
      );
    });
  const clean = await run(['verify', '--repo', repoDir, '--json']);
  assert.equal(clean.code, 0, clean.stdout);
  assert.equal((JSON.parse(clean.stdout) as { ok: boolean }).ok, true);
  const key = backup.manifest.key;
  await flipByte(path.join(repoDir, key), 10);
  try {
    const damaged = await run(['verify', '--repo', repoDir, '--json']);
    assert.equal(damaged.code, 5);
    const report = JSON.parse(damaged.stdout) as { code: string; problems: Array<{ object: string }> };
    assert.equal(report.code, 'WARDEN_E_REPO_VERIFY_PROBLEMS');
    assert.ok(report.problems.some((p) => p.object === key));
    const human = await run(['verify', '--repo', repoDir]);
    assert.equal(human.code, 5);
    assert.match(human.stdout, /breaks: backup .* unrestorable/);
  } finally {
    await flipByte(path.join(repoDir, key), 10);
  }
});

test('a file inside an archive that differs from backup_manifest is named, even with a consistent record', async () => {
  // Rewrite base.tar with one byte of PG_VERSION changed and record the new checksum, as a
  // buggy writer would: only the manifest comparison can notice.
  const archive = backup.archives.find((a) => a.archive === 'base.tar')!;
  const recordKey = `backups/${backup.id}/backup.json`;
  const archiveFile = path.join(repoDir, archive.key);
  const recordFile = path.join(repoDir, recordKey);
  const [originalArchive, originalRecord] = await Promise.all([readFile(archiveFile), readFile(recordFile)]);
  const tarBytes = await readArchiveTar(store, backup.id, 'base.tar');
  let at = 0;
  while (at < tarBytes.length && tarBytes.toString('latin1', at, at + 10) !== 'PG_VERSION') {
    const size = parseInt(tarBytes.toString('latin1', at + 124, at + 136).trim() || '0', 8);
    at += 512 + Math.ceil(size / 512) * 512;
  }
  assert.ok(at < tarBytes.length, 'PG_VERSION in base.tar');
  tarBytes[at + 512] = tarBytes[at + 512]! ^ 0x01;
  await forgeArchive(store, backup.id, 'base.tar', tarBytes);
  try {
    const report = await verifyRepository({ store });
    assert.deepEqual(
      report.problems.map((p) => [p.kind, p.object, p.details?.file, p.details?.reason]),
      [['manifest-mismatch', archive.key, 'PG_VERSION', 'checksum']],
    );
    assert.equal(report.backups[0]!.restorable, false);
  } finally {
    await writeFile(archiveFile, originalArchive);
    await writeFile(recordFile, originalRecord);
  }
});
