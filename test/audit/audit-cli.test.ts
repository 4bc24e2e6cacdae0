import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { auditRecordKey } from '../../src/audit/audit-record.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { runWarden } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';

interface Listed {
  records: Array<{
    seq: number;
    action: string;
    outcome: string;
    code?: string;
    target?: string;
    actor: { user: string; host: string };
  }>;
}

test('CLI commands that act on protected data are recorded, listed, and tampering makes `audit verify` fail', async () => {
  const cwd = await tempDir('audit-cli');
  const repo = path.join(cwd, 'repo');
  const store = new FsObjectStore(repo);
  await Repository.openFor(store, {
    systemId: '7300000000000000002',
    walSegmentSize: 16 << 20,
    serverVersion: '15.0',
  });
  const warden = (...args: string[]) => runWarden([...args, '--repo', repo], { cwd });

  const expire = await warden('expire', '--dry-run');
  assert.equal(expire.code, 0, expire.stderr);
  const missing = await warden('backup', 'delete', '20260101-000000F');
  assert.notEqual(missing.code, 0);
  // Reading metadata is not recorded.
  assert.equal((await warden('backup', 'list')).code, 0);

  const listed = await warden('audit', 'list', '--json');
  assert.equal(listed.code, 0, listed.stderr);
  const { records } = JSON.parse(listed.stdout) as Listed;
  assert.deepEqual(
    records.map((r) => [r.seq, r.action, r.outcome, r.target]),
    [
      [1, 'expire', 'succeeded', undefined],
      [2, 'backup delete', 'failed', '20260101-000000F'],
    ],
  );
  assert.equal(records[1]!.code, 'WARDEN_E_BACKUP_NOT_FOUND');
  assert.ok(records.every((r) => r.actor.user.length > 0 && r.actor.host.length > 0));

  const intact = await warden('audit', 'verify');
  assert.equal(intact.code, 0, intact.stdout + intact.stderr);
  assert.match(intact.stdout, /audit log intact/);

  const key = auditRecordKey(1);
  const edited = JSON.parse((await store.getBuffer(key)).toString()) as { outcome: string };
  edited.outcome = 'failed';
  await store.putBuffer(key, Buffer.from(JSON.stringify(edited)));
  const broken = await warden('audit', 'verify', '--json');
  assert.equal(broken.code, 5, broken.stdout + broken.stderr);
  const report = JSON.parse(broken.stdout) as { ok: boolean; problems: Array<{ object: string }> };
  assert.equal(report.ok, false);
  assert.deepEqual(
    report.problems.map((p) => p.object),
    [auditRecordKey(2)],
  );

  const badSince = await warden('audit', 'list', '--since', '2026-12-06 10:00');
  assert.equal(badSince.code, 2);
});
