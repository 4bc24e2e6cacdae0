import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { listBackups, type BackupRecord } from '../../src/repository/backup-catalog.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory, type SegmentRecord } from '../../src/repository/wal-archive.ts';
import { deleteBackupObjects } from '../../src/retention/delete-backup.ts';
import { expire, type ExpireReport } from '../../src/retention/expire.ts';
import { formatLsn, segmentName } from '../../src/wal/lsn.ts';

const SEG = 16 * 1024 * 1024;
const DAY = 86_400_000;
const NOW = new Date('2026-11-22T12:00:00Z');
let dir: string;
let store: FsObjectStore;

/** A repository written by hand: ten daily backups, WAL from the first one on; no data needed to plan. */
async function fakeRepository(root: string): Promise<{ store: FsObjectStore; ids: string[] }> {
  const fs = new FsObjectStore(root);
  const meta = {
    format: 1,
    systemId: '1',
    walSegmentSize: SEG,
    serverVersion: '17',
    createdAt: '',
    createdBy: '',
  };
  await fs.putBuffer('warden-repo.json', Buffer.from(JSON.stringify(meta)));
  const ids: string[] = [];
  for (let day = 9; day >= 0; day -= 1) {
    const end = new Date(NOW.getTime() - day * DAY);
    const id = `${end.toISOString().slice(0, 10).replace(/-/g, '')}-120000F`;
    const start = BigInt(10 - day) * 2n * BigInt(SEG);
    const record: BackupRecord = {
      format: 1,
      id,
      ...(day === 8 ? { name: 'pre-v1.13.0-upgrade' } : {}),
      kind: 'full',
      systemId: '1',
      timeline: 1,
      startLsn: formatLsn(start + 40n),
      endLsn: formatLsn(start + 4000n),
      startTime: end.toISOString(),
      endTime: end.toISOString(),
      serverVersion: '17',
      compression: 'zstd',
      compressedOn: 'client',
      archives: [],
      manifest: { key: `backups/${id}/backup_manifest.zst`, size: 1, sha256: '', rawSize: 1 },
      durationMs: 1,
    };
    await fs.putBuffer(`backups/${id}/base.tar.zst`, Buffer.from('x'));
    await fs.putBuffer(`backups/${id}/backup.json`, Buffer.from(JSON.stringify(record)));
    ids.push(id);
  }
  for (let n = 2n; n < 24n; n += 1n) {
    const segment = segmentName(1, n * BigInt(SEG), SEG);
    const record: SegmentRecord = {
      format: 1,
      segment,
      timeline: 1,
      startLsn: formatLsn(n * BigInt(SEG)),
      compression: 'zstd',
      size: 1,
      sha256: '',
      validBytes: SEG,
      commits: 0,
    };
    await fs.putBuffer(`wal/00000001/${segment}.zst`, Buffer.from('x'));
    await fs.putBuffer(`wal/00000001/${segment}.json`, Buffer.from(JSON.stringify(record)));
  }
  return { store: fs, ids };
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'warden-expire-'));
});
after(async () => rm(dir, { recursive: true, force: true }));

test('a backup whose deletion stops after backup.json is no longer listed', async () => {
  ({ store } = await fakeRepository(path.join(dir, 'crash')));
  const repository = await Repository.open(store);
  const [oldest] = await listBackups(repository);
  const failing = Object.create(store) as FsObjectStore;
  let deletes = 0;
  failing.delete = async (key: string) => {
    deletes += 1;
    if (deletes > 1) throw new Error('disk went away');
    return store.delete(key);
  };
  await assert.rejects(deleteBackupObjects(failing, oldest!.id));
  assert.ok(!(await listBackups(repository)).some((b) => b.id === oldest!.id));
  assert.ok((await store.list(`backups/${oldest!.id}/`)).length > 0, 'its objects are still there');
  await deleteBackupObjects(store, oldest!.id);
  assert.deepEqual(await store.list(`backups/${oldest!.id}/`, { includeIncomplete: true }), []);
});

test('expire deletes backups and WAL of a repository and a second run has nothing to do', async () => {
  const fake = await fakeRepository(path.join(dir, 'run'));
  const policy = { keepLast: 3 };
  const report = await expire({ store: fake.store, policy, now: NOW });
  const repository = await Repository.open(fake.store);
  // newest 3 plus the named one
  assert.deepEqual(
    (await listBackups(repository)).map((b) => b.id),
    [fake.ids[1], ...fake.ids.slice(-3)],
  );
  assert.deepEqual(report.deleted.backups, [fake.ids[0], ...fake.ids.slice(2, 7)]);
  const inventory = await readWalInventory(repository);
  const first = inventory.segments.get(1)![0]!;
  // the named backup (second day) starts in segment 4: WAL from there on stays, data and record alike
  assert.equal(first.segment, segmentName(1, 4n * BigInt(SEG), SEG));
  assert.equal(report.deleted.walSegments, 2);
  const walKeys = await fake.store.list('wal/00000001/');
  assert.ok(!walKeys.some((k) => k.includes(segmentName(1, 3n * BigInt(SEG), SEG))));
  const again = await expire({ store: fake.store, policy, now: NOW });
  assert.deepEqual([again.plan.expire.length, again.plan.walToDelete.length], [0, 0]);
});

test('warden expire --dry-run --json prints the plan with rules and deletes nothing', async () => {
  const fake = await fakeRepository(path.join(dir, 'cli'));
  const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(
      'node',
      [
        path.resolve('bin/warden.js'),
        'expire',
        '--dry-run',
        '--json',
        '--repo',
        path.join(dir, 'cli'),
        '--keep-last',
        '2',
      ],
      { cwd: dir },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    ),
  );
  assert.equal(run.code, 0, run.stderr);
  const report = JSON.parse(run.stdout) as ExpireReport;
  assert.equal(report.dryRun, true);
  // --keep-last 2 replaces the default policy (it no longer adds to GFS 7/4/12): the two newest
  // and the named backup stay, the other seven would go; the dry run deletes none of them
  assert.equal(report.plan.expire.length, 7);
  assert.ok(report.plan.keep.every((k) => k.reasons.length > 0));
  assert.equal(report.policy.keepLast, 2);
  assert.equal((await listBackups(await Repository.open(fake.store))).length, 10);
  const bad = await new Promise<number>((resolve) =>
    execFile(
      'node',
      [
        path.resolve('bin/warden.js'),
        'expire',
        '--dry-run',
        '--repo',
        path.join(dir, 'cli'),
        '--recovery-window',
        '7 days',
      ],
      { cwd: dir },
      (error) => resolve(error ? Number(error.code ?? 1) : 0),
    ),
  );
  assert.equal(bad, 2);
});
