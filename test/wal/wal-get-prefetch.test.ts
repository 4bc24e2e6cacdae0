import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { spoolDirectory } from '../../bin/wal-get-fast.js';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { walPush } from '../../src/backup/wal-push.ts';
import { checkLedger, createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { X25519Identity } from '../../src/pipeline/encryption/age-keys.ts';
import { sha256 } from '../../src/pipeline/hashing.ts';
import { SigningKey } from '../../src/pipeline/signing/signing-keys.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import { serverRunAs } from '../../src/postgres/os-user.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { tempSuffix } from '../../src/repository/temp-name.ts';
import { restore } from '../../src/restore/restore.ts';
import { WalSpool } from '../../src/restore/wal-spool.ts';
import { freePort } from '../../src/util/free-port.ts';
import { runWarden, WARDEN_BIN } from '../harness/cli.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';

// `wal get`'s fast path and background prefetcher (bin/wal-get-fast.js,
// src/restore/wal-prefetcher.ts) over an encrypted, signed repository filled from a real
// server's archive; one server for the file.
const identity = X25519Identity.generate();
const signingKey = SigningKey.generate();
const keys = () => ({
  identities: [identity],
  recipients: [identity.recipient],
  trust: { keys: new Map([[signingKey.id, signingKey.publicKey]]) },
  signingKey,
});
const runAs = serverRunAs();
let cluster: TestCluster;
let repoDir: string;
let identityFile: string;
/** Archived segments, in order, with their raw bytes. */
const segments: Array<{ name: string; data: Buffer }> = [];
let transfers: number[] = [];

const getFlags = (repo = repoDir) => [
  '--repo',
  repo,
  '--identity',
  identityFile,
  '--trust-key',
  signingKey.id,
  '--prefetch-idle',
  '1',
];

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

/** A data directory stand-in for `wal get` run by hand (cwd, with pg_wal). */
async function scratch(name: string): Promise<string> {
  const dir = path.join(cluster.workDir, name);
  await mkdir(path.join(dir, 'pg_wal'), { recursive: true });
  return dir;
}

/** The spool `wal get` uses for these flags in `dir`, made as the fast path makes it. */
async function spoolOf(dir: string, flags: string[]): Promise<string> {
  const spool = spoolDirectory(path.join(dir, 'pg_wal', 'warden-spool'), flags, dir);
  await mkdir(spool, { recursive: true, mode: 0o700 });
  return spool;
}

before(async () => {
  cluster = await startCluster({
    settings: { archive_mode: 'on', archive_command: '/bin/false', wal_keep_size: '0' },
  });
  const archive = path.join(cluster.workDir, 'archive');
  await mkdir(archive);
  if (runAs) await promisify(execFile)('chown', [`${runAs.uid}:${runAs.gid}`, archive]);
  await cluster.query(`ALTER SYSTEM SET archive_command = 'cp %p ${archive}/%f'`);
  await cluster.query('SELECT pg_reload_conf()');
  repoDir = path.join(cluster.workDir, 'repo');
  await withClient(cluster.url(), (client) => createLedger(client));
  const store = new FsObjectStore(repoDir);
  await takeBackup({
    connection: { ...connectionFromUrl(cluster.url()), tls: 'disable' },
    store,
    compression: 'zstd',
    keys: keys(),
  });
  let last = '';
  for (let i = 0; i < 5; i += 1) {
    await withClient(cluster.url(), (client) => randomTransfer(client));
    [{ file: last }] = (await cluster.query<{ file: string }>(
      'SELECT pg_walfile_name(pg_switch_wal()) AS file',
    )) as [{ file: string }];
  }
  await waitFor('archiving', async () => {
    const [row] = await cluster.query<{ last: string | null }>(
      'SELECT last_archived_wal AS last FROM pg_stat_archiver',
    );
    return row?.last && row.last >= last ? true : undefined;
  });
  // Pushed as archive_command would, after the backup: the WAL a standby of the backup needs.
  for (const name of (await readdir(archive)).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort()) {
    await walPush({ store, file: path.join(archive, name), keys: keys() });
    segments.push({ name, data: await readFile(path.join(archive, name)) });
  }
  transfers = await withClient(cluster.url(), async (client) => (await checkLedger(client)).transfers);
  identityFile = path.join(cluster.workDir, 'identity.txt');
  await writeFile(identityFile, `${identity.encode()}\n`, { mode: 0o600 });
  // The server's OS user reads the repository and the identity (restore_command runs as it).
  if (runAs) await promisify(execFile)('chown', ['-R', `${runAs.uid}:${runAs.gid}`, repoDir, identityFile]);
});

after(async () => {
  await cluster?.stop();
});

test('a standby catches up from the repository through the fast path; the prefetcher stops by itself and leaves nothing', async () => {
  const dataDir = path.join(cluster.workDir, 'standby');
  const port = await freePort();
  const restoreCommand = [process.execPath, WARDEN_BIN, 'wal', 'get', '%f', '%p', ...getFlags()].join(' ');
  await restore({
    store: new FsObjectStore(repoDir),
    target: { kind: 'latest' },
    targetDir: dataDir,
    port,
    keys: keys(),
    standby: { restoreCommand },
  });
  const standby = new LocalInstance({ binaries: cluster.instance.binaries, dataDir, port, runAs });
  const spoolRoot = path.join(dataDir, 'pg_wal', 'warden-spool');
  const prefetchers = new Set<string>();
  await standby.start();
  try {
    const url = cluster.url().replace(`:${cluster.port}/`, `:${port}/`);
    await waitFor(
      'the standby to replay every archived commit',
      async () => {
        for (const spool of await readdir(spoolRoot).catch(() => [] as string[])) {
          const pid = await readFile(path.join(spoolRoot, spool, 'prefetcher.pid'), 'utf8').catch(() => '');
          if (pid) prefetchers.add(pid);
        }
        const seen = await withClient(url, (client) => checkLedger(client)).catch(() => undefined);
        return seen && seen.transfers.length === transfers.length ? seen : undefined;
      },
      120_000,
    );
    const log = await readFile(standby.logFile, 'utf8');
    const restored = new Set(log.match(/restored log file "[0-9A-F]{24}"/g));
    assert.ok(restored.size >= 4, `segments restored through wal get: ${restored.size}`);
  } finally {
    await standby.stop({ mode: 'fast' });
  }
  assert.ok(prefetchers.size >= 1, 'a background prefetcher ran');
  // Stopped by itself (--prefetch-idle 1), the spool removed with it.
  await waitFor('the prefetcher to stop and remove its spool', async () =>
    (await exists(spoolRoot)) ? undefined : true,
  );
  const alive = (pid: string) => {
    try {
      process.kill(Number(pid), 0);
      return true;
    } catch {
      return false;
    }
  };
  await waitFor('every prefetcher to exit', async () => ([...prefetchers].some(alive) ? undefined : true));
});

test('the fast path serves a prefetched segment without reading the repository or the keys', async () => {
  const dir = await scratch('fast');
  const flags = getFlags(path.join(cluster.workDir, 'no-such-repository'));
  const segment = segments[1]!;
  await new WalSpool(await spoolOf(dir, flags)).put(segment.name, segment.data);
  const got = await runWarden(['wal', 'get', segment.name, 'pg_wal/RECOVERYXLOG', ...flags], { cwd: dir });
  assert.equal(got.code, 0, got.stderr);
  assert.ok((await readFile(path.join(dir, 'pg_wal', 'RECOVERYXLOG'))).equals(segment.data));
  assert.deepEqual(await readdir(await spoolOf(dir, flags)), [], 'moved out of the spool');
  await rm(dir, { recursive: true });
});

test('a half-written, a tampered or an unprotected spool file is never served: the repository copy is', async () => {
  const dir = await scratch('untrusted');
  const flags = getFlags();
  const target = path.join(dir, 'pg_wal', 'RECOVERYXLOG');
  const get = async (name: string) => {
    const got = await runWarden(['wal', 'get', name, 'pg_wal/RECOVERYXLOG', ...flags], { cwd: dir });
    assert.equal(got.code, 0, got.stderr);
    return readFile(target);
  };
  const spoolRoot = path.join(dir, 'pg_wal', 'warden-spool');
  const gone = () =>
    waitFor('the prefetcher to leave', async () => ((await exists(spoolRoot)) ? undefined : true));

  // Half-written: the prefetcher's temp name, with the right checksum in it and half the bytes.
  const half = segments[0]!;
  const spool = await spoolOf(dir, flags);
  await writeFile(
    path.join(spool, `${half.name}.sha256-${sha256(half.data)}${tempSuffix()}`),
    half.data.subarray(0, half.data.length / 2),
    { mode: 0o600 },
  );
  assert.ok((await get(half.name)).equals(half.data));
  await gone();

  // Tampered after it was made ready: its content no longer matches its name.
  const tampered = segments[1]!;
  await new WalSpool(await spoolOf(dir, flags)).put(tampered.name, tampered.data);
  const [ready] = await readdir(await spoolOf(dir, flags));
  const bytes = await readFile(path.join(spool, ready!));
  bytes[bytes.length - 100]! ^= 0xff;
  await writeFile(path.join(spool, ready!), bytes);
  assert.ok((await get(tampered.name)).equals(tampered.data));
  await gone();

  // A consistent file in a spool others may enter: the spool is not trusted at all.
  const open = segments[2]!;
  const forged = Buffer.alloc(open.data.length, 7);
  await new WalSpool(await spoolOf(dir, flags)).put(open.name, forged);
  await chmod(spool, 0o755);
  assert.ok((await get(open.name)).equals(open.data));
  await rm(dir, { recursive: true });
});

test('a segment past the archive exits 1 silently through the prefetcher, which then stops', async () => {
  const dir = await scratch('missing');
  const flags = getFlags();
  const past = `${segments.at(-1)!.name.slice(0, 8)}000000FF000000FE`;
  const got = await runWarden(['wal', 'get', past, 'pg_wal/RECOVERYXLOG', ...flags], { cwd: dir });
  assert.deepEqual({ code: got.code, stderr: got.stderr }, { code: 1, stderr: '' });
  assert.equal(await exists(path.join(dir, 'pg_wal', 'RECOVERYXLOG')), false);
  await waitFor('the prefetcher to leave', async () =>
    (await exists(path.join(dir, 'pg_wal', 'warden-spool'))) ? undefined : true,
  );
  // Names that are not WAL file names never become paths.
  for (const hostile of ['../../../etc/passwd', `${segments[0]!.name}/../../x`]) {
    const bad = await runWarden(['wal', 'get', hostile, 'pg_wal/RECOVERYXLOG', ...flags], { cwd: dir });
    assert.equal(bad.code, 1);
  }
  assert.deepEqual(await readdir(path.join(dir, 'pg_wal')), []);
  await rm(dir, { recursive: true });
});

test('one prefetcher per spool: the lock refuses a second holder while the first lives, and is taken over from a dead one', async () => {
  const dir = await scratch('lock');
  const spool = new WalSpool(await spoolOf(dir, getFlags()));
  assert.equal(await spool.lock(), true);
  assert.equal(await new WalSpool(spool.dir).lock(), false, 'held by a live process');
  // A dead holder (a pid that is not running): taken over.
  const dead = await promisify(execFile)(process.execPath, [
    '-e',
    'process.stdout.write(String(process.pid))',
  ]);
  await writeFile(path.join(spool.dir, 'prefetcher.pid'), dead.stdout);
  assert.equal(await new WalSpool(spool.dir).lock(), true);
  await rm(dir, { recursive: true });
});
