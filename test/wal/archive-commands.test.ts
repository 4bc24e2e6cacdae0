import assert from 'node:assert/strict';
import { chmod, chown, copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { walPush } from '../../src/backup/wal-push.ts';
import { checkLedger, createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { X25519Identity } from '../../src/pipeline/encryption/age-keys.ts';
import { SigningKey, signingKeyFileText } from '../../src/pipeline/signing/signing-keys.ts';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { serverRunAs } from '../../src/postgres/os-user.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory, segmentRecordKey } from '../../src/repository/wal-archive.ts';
import { restore } from '../../src/restore/restore.ts';
import { freePort } from '../../src/util/free-port.ts';
import { rejectsWithCode } from '../faults/helpers.ts';
import { runWarden, WARDEN_BIN } from '../harness/cli.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { withRestored } from '../harness/restored.ts';

// An archive-only repository: archive_command = `warden wal push %p` (run by PostgreSQL as its
// own OS user), no WAL stream and no slot of the repository's own; encrypted and signed.
const identity = X25519Identity.generate();
const signingKey = SigningKey.generate();
let cluster: TestCluster;
let repoDir: string;
let keysDir: string;
let identityFile: string;
const commits: Array<{ id: number; before: number; after: number }> = [];
const runAs = serverRunAs();

/** Owned by the server's OS user (when the tests run as root), as a real setup would have it. */
async function serverOwned(file: string): Promise<void> {
  if (runAs) await chown(file, runAs.uid, runAs.gid);
}

const keys = () => ({
  identities: [identity],
  recipients: [identity.recipient],
  trust: { keys: new Map([[signingKey.id, signingKey.publicKey]]) },
  signingKey,
});

const walGetArgs = () => ['--repo', repoDir, '--identity', identityFile, '--trust-key', signingKey.id];

async function switchAndWaitArchived(): Promise<void> {
  const [row] = await cluster.query<{ file: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS file');
  const deadline = Date.now() + 120_000;
  for (;;) {
    const [stat] = await cluster.query<{ last: string | null; failed: string | null }>(
      'SELECT last_archived_wal AS last, last_failed_wal AS failed FROM pg_stat_archiver',
    );
    if (stat?.last && stat.last >= row!.file) return;
    if (Date.now() > deadline)
      throw new Error(
        `${row!.file} not archived (last ${stat?.last}, failed ${stat?.failed}): ${await cluster.instance.logTail()}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

before(async () => {
  // The archive command needs the repository path before the server exists: a directory of its own.
  const { tempDir } = await import('../harness/temp-dir.ts');
  const base = await tempDir('archive-commands');
  await chmod(base, 0o755);
  repoDir = path.join(base, 'repo');
  keysDir = path.join(base, 'keys');
  await mkdir(repoDir, { mode: 0o700 });
  await mkdir(keysDir, { mode: 0o700 });
  await serverOwned(repoDir);
  await serverOwned(keysDir);
  const keyFile = path.join(keysDir, 'signing-key');
  await writeFile(keyFile, signingKeyFileText(signingKey), { mode: 0o600 });
  await serverOwned(keyFile);
  identityFile = path.join(keysDir, 'identity.txt');
  await writeFile(identityFile, `${identity.encode()}\n`, { mode: 0o600 });
  await serverOwned(identityFile);
  const push = [
    process.execPath,
    WARDEN_BIN,
    'wal',
    'push',
    '%p',
    '--repo',
    repoDir,
    '--recipient',
    identity.label,
    '--signing-key',
    keyFile,
  ].join(' ');
  cluster = await startCluster({
    settings: { archive_mode: 'on', archive_command: push, wal_keep_size: '0' },
  });
  await withClient(cluster.url(), (client) => createLedger(client));
  await switchAndWaitArchived();
  await takeBackup({
    connection: {
      ...(await import('../../src/postgres/connection-config.ts')).connectionFromUrl(cluster.url()),
      tls: 'disable',
    },
    store: new FsObjectStore(repoDir),
    compression: 'zstd',
    keys: keys(),
  });
  await withClient(cluster.url(), async (client) => {
    for (let i = 0; i < 12; i += 1) {
      const before = Date.now();
      const done = await randomTransfer(client);
      commits.push({ id: done.id, before, after: Date.now() });
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
  });
  await switchAndWaitArchived();
});

after(async () => {
  await cluster?.stop();
});

test('an archive-only repository (archive_command = warden wal push, no stream) restores exactly', async () => {
  const store = new FsObjectStore(repoDir);
  const inventory = await readWalInventory(await Repository.open(store, keys()));
  const slots = await cluster.query('SELECT slot_name FROM pg_replication_slots');
  assert.deepEqual(slots, [], 'no replication slot on the server');
  const records = [...inventory.segments.values()].flat();
  assert.ok(records.length >= 2);
  assert.ok(
    records.every((r) => r.encryption && r.signature && r.walSha256),
    'encrypted, signed, raw hash',
  );

  const latest = await withRestored(
    cluster,
    store,
    'archive-only-latest',
    { kind: 'latest' },
    (c) => checkLedger(c),
    keys(),
  );
  assert.deepEqual(
    latest.transfers,
    commits.map((c) => c.id),
  );
  assert.ok(latest.balanced && latest.consistent);

  const middle = commits[5]!;
  const time = new Date(Math.floor((middle.after + commits[6]!.before) / 2));
  const pitr = await withRestored(
    cluster,
    store,
    'archive-only-pitr',
    { kind: 'time', time },
    (c) => checkLedger(c),
    keys(),
  );
  assert.deepEqual(
    pitr.transfers,
    commits.slice(0, 6).map((c) => c.id),
  );
});

test('wal push of the same segment again succeeds; a different one of that name is refused and nothing is overwritten', async () => {
  const store = new FsObjectStore(repoDir);
  const repository = await Repository.open(store, keys());
  const inventory = await readWalInventory(repository);
  const record = inventory.segments.get(1)!.at(-1)!;
  const recordKey = segmentRecordKey(1, record.segment);
  const storedRecord = await store.getBuffer(recordKey);
  // The segment as PostgreSQL had it: read back through wal get (raw bytes).
  const scratch = path.join(cluster.workDir, 'push-scratch');
  await mkdir(scratch);
  const file = path.join(scratch, record.segment);
  const got = await runWarden(['wal', 'get', record.segment, file, '--prefetch', '0', ...walGetArgs()], {
    cwd: scratch,
  });
  assert.equal(got.code, 0, got.stderr);

  const again = await walPush({ store, file, keys: keys() });
  assert.deepEqual(again, { kind: 'segment', name: record.segment, outcome: 'already-archived' });

  const data = await readFile(file);
  data[data.length - 100]! ^= 0xff; // a byte of the segment's body, past every header
  await writeFile(file, data);
  await rejectsWithCode(walPush({ store, file, keys: keys() }), 'WARDEN_E_WAL_PUSH_CONFLICT');
  const cli = await runWarden(
    ['wal', 'push', file, '--repo', repoDir, '--recipient', identity.label, '--json'],
    {
      cwd: scratch,
      env: { WARDEN_SIGNING_KEY_FILE: path.join(keysDir, 'signing-key') },
    },
  );
  assert.equal(cli.code, 6, cli.stderr);
  assert.equal(
    (JSON.parse(cli.stdout) as { error: { code: string } }).error.code,
    'WARDEN_E_WAL_PUSH_CONFLICT',
  );
  assert.deepEqual(await store.getBuffer(recordKey), storedRecord, 'the stored record is untouched');
});

test('a standby restored with --standby catches up from the repository through wal get, then streams', async () => {
  await cluster.query("SELECT pg_create_physical_replication_slot('standby_one')");
  const standbyDir = path.join(cluster.workDir, 'standby');
  const passfile = path.join(keysDir, 'pgpass');
  await writeFile(passfile, `127.0.0.1:${cluster.port}:*:postgres:${cluster.password}\n`, { mode: 0o600 });
  await serverOwned(passfile);
  const port = await freePort();
  const restoreCommand = [
    process.execPath,
    WARDEN_BIN,
    'wal',
    'get',
    '%f',
    '%p',
    ...walGetArgs(),
    '--prefetch-idle',
    '1',
  ].join(' ');
  await restore({
    store: new FsObjectStore(repoDir),
    target: { kind: 'latest' },
    targetDir: standbyDir,
    port,
    keys: keys(),
    standby: {
      restoreCommand,
      primaryConninfo: `host=127.0.0.1 port=${cluster.port} user=postgres passfile=${passfile}`,
      slot: 'standby_one',
    },
  });
  assert.ok((await readdir(standbyDir)).includes('standby.signal'));
  const autoConf = await readFile(path.join(standbyDir, 'postgresql.auto.conf'), 'utf8');
  assert.doesNotMatch(autoConf, new RegExp(cluster.password), 'no password in the standby settings');
  const standby = new LocalInstance({
    binaries: cluster.instance.binaries,
    dataDir: standbyDir,
    port,
    runAs,
  });
  await standby.start();
  try {
    const url = cluster.url().replace(`:${cluster.port}/`, `:${port}/`);
    // Every commit up to the last archived segment came from the repository, through wal get.
    const log = await readFile(standby.logFile, 'utf8');
    assert.match(log, /restored log file "[0-9A-F]{24}" from archive/);
    const done = await withClient(cluster.url(), (client) => randomTransfer(client));
    const deadline = Date.now() + 60_000;
    let seen: { transfers: number[]; streaming: boolean } = { transfers: [], streaming: false };
    while (Date.now() < deadline) {
      seen = await withClient(url, async (client) => ({
        transfers: (await checkLedger(client)).transfers,
        streaming:
          (await client.query("SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'")).rowCount ===
          1,
      })).catch(() => seen);
      if (seen.streaming && seen.transfers.includes(done.id)) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.ok(seen.streaming, 'the standby streams from its primary');
    assert.deepEqual(seen.transfers, [...commits.map((c) => c.id), done.id]);
    const [slot] = await cluster.query<{ active: boolean }>(
      "SELECT active FROM pg_replication_slots WHERE slot_name = 'standby_one'",
    );
    assert.equal(slot?.active, true, 'through its slot');
  } finally {
    await standby.stop({ mode: 'immediate' });
  }
  // wal get's background prefetcher stops by itself and takes its spool with it.
  const spool = path.join(standbyDir, 'pg_wal', 'warden-spool');
  const deadline = Date.now() + 60_000;
  while (
    await stat(spool).then(
      () => true,
      () => false,
    )
  ) {
    if (Date.now() > deadline) throw new Error('the prefetcher did not stop');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
});

// Last: the history file pushed here would send a standby of this repository to timeline 2.
test('wal get: a file the repository lacks exits 1 silently; history files come back as stored', async () => {
  const scratch = path.join(cluster.workDir, 'get-scratch');
  await mkdir(scratch);
  const missing = await runWarden(
    ['wal', 'get', '00000001000000FF000000FE', 'pg_wal_RECOVERYXLOG', ...walGetArgs()],
    {
      cwd: scratch,
    },
  );
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, '');
  const noTimeline = await runWarden(['wal', 'get', '00000009.history', 'RECOVERYHISTORY', ...walGetArgs()], {
    cwd: scratch,
  });
  assert.equal(noTimeline.code, 1);
  assert.equal(noTimeline.stderr, '');

  // A timeline history file pushed as PostgreSQL does (pg_wal/<file>, a segment beside it).
  const walDir = path.join(scratch, 'pg_wal');
  await mkdir(walDir);
  const segments = (await readdir(path.join(cluster.instance.dataDir, 'pg_wal')))
    .filter((f) => /^[0-9A-F]{24}$/.test(f))
    .sort();
  await copyFile(
    path.join(cluster.instance.dataDir, 'pg_wal', segments.at(-1)!),
    path.join(walDir, segments.at(-1)!),
  );
  const history = '1\t0/9000000\tno recovery target specified\n';
  await writeFile(path.join(walDir, '00000002.history'), history);
  const pushed = await walPush({
    store: new FsObjectStore(repoDir),
    file: path.join(walDir, '00000002.history'),
    keys: keys(),
  });
  assert.equal(pushed.kind, 'history');
  const got = await runWarden(['wal', 'get', '00000002.history', 'RECOVERYHISTORY', ...walGetArgs()], {
    cwd: scratch,
  });
  assert.equal(got.code, 0, got.stderr);
  assert.equal(await readFile(path.join(scratch, 'RECOVERYHISTORY'), 'utf8'), history);
  await writeFile(path.join(walDir, '00000002.history'), '1\t0/A000000\tanother switch\n');
  await rejectsWithCode(
    walPush({ store: new FsObjectStore(repoDir), file: path.join(walDir, '00000002.history'), keys: keys() }),
    'WARDEN_E_WAL_PUSH_CONFLICT',
  );
});
