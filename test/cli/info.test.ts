import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { readIdentityFile } from '../../src/pipeline/encryption/keyring.ts';
import { freePort } from '../../src/util/free-port.ts';
import { recordVerification, verifyRestore } from '../../src/verify/restore-check.ts';
import type { ClusterInfo } from '../../src/daemon/cluster-info.ts';
import { runWarden } from '../harness/cli.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { streamInto, type StreamingRepository } from '../harness/streaming.ts';

/**
 * `warden info --json` against what the repository holds: the same backups, sizes and window as
 * `backup list`, the same key uses as `repo keys`, WAL volume as on disk, the slot as the server
 * has it, and which backup a verification restored.
 */

let cluster: TestCluster;
let stream: StreamingRepository;
const repoDir = () => path.join(cluster.workDir, 'repo');
const db = (port = cluster.port) =>
  `postgres://postgres:${cluster.password}@127.0.0.1:${port}/postgres?sslmode=disable`;
const warden = (args: string[]) => runWarden([...args, '--repo', repoDir()], { cwd: cluster.workDir });

async function info(dbUrl = db()): Promise<ClusterInfo> {
  const run = await warden(['info', '--db', dbUrl, '--json']);
  assert.equal(run.code, 0, run.stderr);
  const parsed = JSON.parse(run.stdout) as { format: number; clusters: ClusterInfo[] };
  assert.equal(parsed.format, 1);
  assert.equal(parsed.clusters.length, 1);
  return parsed.clusters[0]!;
}

before(async () => {
  cluster = await startCluster();
  await withClient(cluster.url(), (client) => createLedger(client));
  // The CLI's backups are encrypted to this identity (found in ./.warden/ as a user's would be).
  const keygen = await warden(['repo', 'keygen', '-o', '.warden/identity.txt']);
  assert.equal(keygen.code, 0, keygen.stderr);
  stream = streamInto(cluster);
  await stream.waitForArchive();
  for (let i = 0; i < 3; i += 1) {
    await withClient(cluster.url(), (client) => randomTransfer(client));
    const backup = await warden(['backup', '--db', db()]);
    assert.equal(backup.code, 0, backup.stderr);
  }
  await cluster.query('SELECT pg_switch_wal()');
  await stream.waitForArchive();
  // Stopped, so the window does not move between the commands compared.
  await stream.stop();
});

after(async () => {
  await stream?.stop();
  await cluster?.stop();
});

test('info --json lists the backups, sizes and window that backup list reads from the repository', async () => {
  const list = await warden(['backup', 'list', '--json']);
  assert.equal(list.code, 0, list.stderr);
  const listed = JSON.parse(list.stdout) as {
    backups: Array<{
      id: string;
      kind: string;
      endTime: string;
      archives: Array<{ rawSize: number; size: number }>;
    }>;
    window: unknown;
  };
  const shown = await info();
  assert.equal(shown.backups.length, 3);
  assert.deepEqual(
    shown.backups.map((b) => [b.id, b.kind, b.endTime, b.sizeBytes, b.storedBytes]),
    listed.backups.map((b) => [
      b.id,
      b.kind,
      b.endTime,
      b.archives.reduce((n, a) => n + a.rawSize, 0),
      b.archives.reduce((n, a) => n + a.size, 0),
    ]),
  );
  for (const b of shown.backups) {
    assert.ok(b.sizeBytes > 1_000_000, `${b.id} holds a data directory`);
    assert.deepEqual(b.chain, [b.id]);
    assert.equal(b.verification.state, 'never');
  }
  assert.deepEqual(shown.window, listed.window);
  assert.equal(shown.window.ranges.length, 1);
  assert.equal(shown.window.gaps.length, 0);
  // Every backup stored on disk is listed.
  const onDisk = (await readdir(path.join(repoDir(), 'backups'))).sort();
  assert.deepEqual(shown.backups.map((b) => b.id).sort(), onDisk);
});

test('info --json counts the WAL segments and bytes stored on disk', async () => {
  const shown = await info();
  const dir = path.join(repoDir(), 'wal', '00000001');
  const records = (await readdir(dir)).filter((name) => /^[0-9A-F]{24}\.json$/.test(name));
  let bytes = 0;
  for (const record of records) bytes += (await stat(path.join(dir, record.replace(/\.json$/, '.zst')))).size;
  assert.ok(records.length >= 2);
  assert.equal(shown.wal.segments, records.length);
  assert.equal(shown.wal.storedBytes, bytes);
  assert.equal(shown.wal.timelines[0]!.first, records.sort()[0]!.replace(/\.json$/, ''));
});

test('info --json names the keys that repo keys names', async () => {
  const keys = await warden(['repo', 'keys', '--json']);
  assert.equal(keys.code, 0, keys.stderr);
  const parsed = JSON.parse(keys.stdout) as {
    uses: Array<Record<string, unknown>>;
    signingKeys: Array<{ key: string; trustedHere: boolean }>;
  };
  const shown = await info();
  assert.deepEqual(
    shown.keys.uses,
    parsed.uses.map(({ availableHere: _, ...use }) => use),
  );
  assert.deepEqual(shown.keys.signingKeys, parsed.signingKeys);
  const recipients = [...new Set(parsed.uses.flatMap((use) => use.recipients as string[]))].sort();
  assert.deepEqual(shown.keys.recipients, recipients);
  assert.ok(shown.keys.recipients.length > 0, 'the CLI backups are encrypted by default');
});

test("info shows the repository's slot on the server, or says it could not look", async () => {
  const shown = await info();
  assert.equal(shown.slot.checked, true);
  assert.equal(shown.slot.name, stream.slotName);
  assert.equal(shown.slot.exists, true);
  assert.equal(shown.slot.active, false);
  const unreachable = await info(db(await freePort()));
  assert.equal(unreachable.slot.checked, false);
  assert.match(unreachable.slot.reason ?? '', /WARDEN_E_DB_UNREACHABLE/);
});

test('info shows which backup the last verification restored, and its result', async () => {
  const report = await verifyRestore({
    store: stream.store,
    connection: stream.connection,
    target: { kind: 'latest' },
    scratch: { scratchDir: cluster.workDir },
    keys: { identities: await readIdentityFile(path.join(cluster.workDir, '.warden', 'identity.txt')) },
  });
  await recordVerification(stream.store, report);
  const shown = await info();
  const verified = shown.backups.find((b) => b.id === report.backupId);
  assert.ok(verified);
  assert.equal(verified.verification.state, report.passed ? 'passed' : 'failed');
  assert.equal(verified.verification.at, report.startedAt);
  assert.equal(shown.lastVerification?.startedAt, report.startedAt);
  assert.deepEqual(
    shown.backups.filter((b) => b.id !== report.backupId).map((b) => b.verification.state),
    ['never', 'never'],
  );
  const human = await warden(['info', '--db', db()]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, new RegExp(`last verification: (passed|FAILED).* backup ${report.backupId}`));
});
