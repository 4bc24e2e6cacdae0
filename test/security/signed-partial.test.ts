import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { isWardenError } from '../../src/errors.ts';
import { X25519Identity, X25519Recipient } from '../../src/pipeline/encryption/age-keys.ts';
import type { RepositoryKeys } from '../../src/pipeline/encryption/repository-keys.ts';
import { SigningKey } from '../../src/pipeline/signing/signing-keys.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import {
  readPartialSegment,
  readWalInventory,
  type SegmentRecord,
} from '../../src/repository/wal-archive.ts';
import { restore } from '../../src/restore/restore.ts';
import { parseLsn } from '../../src/wal/lsn.ts';
import { PartialWriter } from '../../src/wal/partial-format.ts';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { withRestored } from '../harness/restored.ts';

// Two repositories streamed from one cluster by a writer holding a signing key: one encrypted
// (sealed partials), one not (checksummed partials). The attacker can write both repositories and
// knows the public recipient, but holds no signing key.
const identity = X25519Identity.generate();
const writer = SigningKey.generate();
const stranger = SigningKey.generate();
const LATEST = 'only in the partial segment';

let cluster: TestCluster;
let identityFile: string;
const repos = { sealed: '', checksummed: '' };
let systemId: string;

const warden = (args: string[]): Promise<CliRun> => runWarden(args, { cwd: cluster.workDir });
const readerArgs = () => ['--identity', identityFile, '--trust-key', writer.id, '--json'];

function errorOf(result: CliRun): { code: string; details: Record<string, unknown> } {
  return (JSON.parse(result.stdout) as { error: { code: string; details: Record<string, unknown> } }).error;
}

async function waitFor(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

before(async () => {
  cluster = await startCluster();
  identityFile = path.join(cluster.workDir, 'identity.txt');
  await writeFile(identityFile, `${identity.encode()}\n`, { mode: 0o600 });
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  await cluster.query('CREATE TABLE t (note text NOT NULL)');
  for (const mode of ['sealed', 'checksummed'] as const) {
    repos[mode] = path.join(cluster.workDir, `repo-${mode}`);
    const store = new FsObjectStore(repos[mode]);
    const keys: RepositoryKeys = {
      signingKey: writer,
      ...(mode === 'sealed' ? { recipients: [identity.recipient] } : {}),
    };
    const stop = new AbortController();
    let flushed = 0n;
    const receiver = new WalReceiver({
      connection,
      store,
      slotName: `warden_${mode}`,
      keys,
      signal: stop.signal,
      onFlush: (lsn) => (flushed = lsn),
    });
    const running = receiver.run().catch((error: unknown) => {
      if (!stop.signal.aborted) throw error;
    });
    try {
      await takeBackup({ connection, store, slotName: `warden_${mode}`, compression: 'zstd', keys });
      await cluster.query('INSERT INTO t VALUES ($1)', [`${LATEST} (${mode})`]);
      const [row] = await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      await waitFor(() => flushed >= parseLsn(row!.lsn), `the ${mode} receiver flushes the newest row`);
    } finally {
      stop.abort();
      await running;
    }
  }
  systemId = (await Repository.open(new FsObjectStore(repos.sealed))).meta.systemId;
});

after(async () => cluster?.stop());

/** The newest partial of a copy of the repository, with the WAL bytes it holds. */
async function partialOf(repo: string): Promise<{ key: string; segment: string; wal: Buffer }> {
  const repository = await Repository.open(new FsObjectStore(repo), { identities: [identity] });
  const newest = (await readWalInventory(repository)).partials.sort((a, b) =>
    Number(b.startLsn - a.startLsn),
  )[0];
  assert.ok(newest && newest.validBytes > 0, 'a partial segment with WAL in it');
  const { raw, validBytes } = await readPartialSegment(repository, newest);
  return { key: newest.key, segment: newest.segment, wal: raw.subarray(0, validBytes) };
}

async function copyOf(mode: keyof typeof repos, name: string): Promise<string> {
  const repo = path.join(cluster.workDir, name);
  await cp(repos[mode], repo, { recursive: true });
  return repo;
}

/** The recipient the repository's records name: all an attacker needs to seal to it. */
async function storedRecipients(repo: string): Promise<X25519Recipient[] | undefined> {
  const dir = path.join(repo, 'wal/00000001');
  const recordFile = (await readdir(dir)).find((f) => f.endsWith('.json'))!;
  const record = JSON.parse(await readFile(path.join(dir, recordFile), 'utf8')) as SegmentRecord;
  return record.encryption?.recipients.map((r) => X25519Recipient.parse(r));
}

/**
 * A partial written by someone without the writer's key: frames of `wal` sealed with a file key of
 * their own (to the stored recipient) or checksummed, signed by `signer` (none: unsigned). With
 * `claim`, the format line names the writer's key instead of the signer's (check bytes redone).
 */
async function forge(
  repo: string,
  segment: string,
  wal: Buffer,
  signer?: SigningKey,
  claim = false,
): Promise<Buffer> {
  const partial = await PartialWriter.create(
    segment,
    await storedRecipients(repo),
    signer ? { key: signer, systemId } : undefined,
  );
  let preamble = partial.preamble;
  const half = Math.floor(wal.length / 2);
  const frames = [partial.frame(wal.subarray(0, half)), partial.frame(wal.subarray(half))];
  if (claim) {
    preamble = Buffer.from(preamble.toString('latin1').replace(signer!.id, writer.id), 'latin1');
    const lineEnd = preamble.indexOf(0x0a) + 1;
    if (preamble.length > lineEnd) {
      createHash('sha256')
        .update(preamble.subarray(0, lineEnd + 4))
        .digest()
        .copy(preamble, lineEnd + 4, 0, 4);
    }
  }
  return Buffer.concat([preamble, ...frames]);
}

/** A directory repository that notes every object read from it. */
class ReadLog extends FsObjectStore {
  readonly reads: string[] = [];

  override get(key: string): Readable {
    this.reads.push(key);
    return super.get(key);
  }

  override async getBuffer(key: string): Promise<Buffer> {
    this.reads.push(key);
    return super.getBuffer(key);
  }
}

async function emptyTarget(name: string): Promise<string> {
  const dir = path.join(cluster.workDir, name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

for (const mode of ['sealed', 'checksummed'] as const) {
  test(`the genuine signed ${mode} partial restores to the newest row with a trust set`, async () => {
    const { key } = await partialOf(repos[mode]);
    const head = (await readFile(path.join(repos[mode], key))).subarray(0, 120).toString('latin1');
    assert.ok(head.startsWith(`warden-partial-wal/v1 ${mode} signed ${writer.id}\n`), head);
    const rows = await withRestored(
      cluster,
      new FsObjectStore(await copyOf(mode, `genuine-${mode}`)),
      `genuine-${mode}-restored`,
      { kind: 'latest' },
      async (client) => (await client.query<{ note: string }>('SELECT note FROM t')).rows.map((r) => r.note),
      { identities: [identity], trust: { keys: new Map([[writer.id, writer.publicKey]]) } },
    );
    assert.ok(rows.includes(`${LATEST} (${mode})`), 'the row only the partial holds is restored');
  });

  test(`a forged ${mode} partial (different WAL, own file key or checksums) is refused by restore and flagged by verify`, async () => {
    const repo = await copyOf(mode, `forged-${mode}`);
    const { key, segment, wal } = await partialOf(repo);
    const changed = Buffer.from(wal);
    changed[wal.length - 100]! ^= 0xff;
    const cases = [
      // Signed by a key of the attacker's own, the format line naming the writer's key.
      { data: await forge(repo, segment, changed, stranger, true), code: 'WARDEN_E_SIGNATURE_INVALID' },
      // Honestly signed by the attacker's key.
      { data: await forge(repo, segment, changed, stranger), code: 'WARDEN_E_SIGNATURE_UNTRUSTED' },
      // The genuine bytes simply re-sealed (or re-checksummed), without any signature.
      { data: await forge(repo, segment, wal), code: 'WARDEN_E_UNSIGNED' },
    ];
    for (const [i, { data, code }] of cases.entries()) {
      await writeFile(path.join(repo, key), data);
      const target = await emptyTarget(`forged-${mode}-target-${i}`);
      const restored = await warden([
        'restore',
        '--latest',
        '--repo',
        repo,
        '--target-dir',
        target,
        ...readerArgs(),
      ]);
      assert.equal(restored.code, 5, restored.stdout + restored.stderr);
      assert.deepEqual([errorOf(restored).code, errorOf(restored).details.object], [code, key]);
      assert.deepEqual(await readdir(target), [], 'nothing reached the target directory');

      // The same through the library, watching what it reads: no archive of the backup, so the
      // refusal came before any byte of it could reach the target.
      const store = new ReadLog(repo);
      await assert.rejects(
        restore({
          store,
          target: { kind: 'latest' },
          targetDir: path.join(cluster.workDir, `forged-${mode}-library-${i}`),
          keys: { identities: [identity], trust: { keys: new Map([[writer.id, writer.publicKey]]) } },
        }),
        (error) => isWardenError(error) && error.code === code,
      );
      assert.ok(store.reads.includes(key), 'the partial was read');
      assert.deepEqual(
        store.reads.filter((read) => read.includes('.tar')),
        [],
        'no archive was read',
      );

      const verified = await warden(['verify', '--repo', repo, ...readerArgs()]);
      assert.equal(verified.code, 5, verified.stderr);
      const report = JSON.parse(verified.stdout) as {
        problems: Array<{ kind: string; object: string; details?: { code?: string } }>;
      };
      const problem = report.problems.find((p) => p.object === key);
      assert.deepEqual([problem?.kind, problem?.details?.code], ['signature', code]);
    }
  });

  test(`an unsigned (legacy) ${mode} partial restores only with --allow-unsigned, which never passes a forged one`, async () => {
    const repo = await copyOf(mode, `unsigned-${mode}`);
    const { key, segment, wal } = await partialOf(repo);
    await writeFile(path.join(repo, key), await forge(repo, segment, wal));
    const refused = await warden([
      'restore',
      '--latest',
      '--repo',
      repo,
      '--target-dir',
      await emptyTarget(`unsigned-${mode}-refused`),
      ...readerArgs(),
    ]);
    assert.equal(errorOf(refused).code, 'WARDEN_E_UNSIGNED');
    const allowed = await warden([
      'restore',
      '--latest',
      '--repo',
      repo,
      '--target-dir',
      await emptyTarget(`unsigned-${mode}-allowed`),
      '--allow-unsigned',
      ...readerArgs(),
    ]);
    assert.equal(allowed.code, 0, allowed.stdout + allowed.stderr);
    assert.match(
      allowed.stderr,
      new RegExp(`warning: ${key} is unsigned; accepted because of --allow-unsigned`),
    );

    await writeFile(path.join(repo, key), await forge(repo, segment, wal, stranger, true));
    const forged = await warden([
      'restore',
      '--latest',
      '--repo',
      repo,
      '--target-dir',
      await emptyTarget(`unsigned-${mode}-forged`),
      '--allow-unsigned',
      ...readerArgs(),
    ]);
    assert.equal(errorOf(forged).code, 'WARDEN_E_SIGNATURE_INVALID');
  });
}

test('a restarted receiver archives (and signs) a leftover partial of its own key, but keeps one signed by another key', async () => {
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  for (const forged of [false, true]) {
    const name = forged ? 'leftover_forged' : 'leftover_own';
    const store = new FsObjectStore(path.join(cluster.workDir, name));
    // Like a backup host: recipients and the signing key, no identity.
    const keys: RepositoryKeys = { recipients: [identity.recipient], signingKey: writer };
    const receive = () => {
      const stop = new AbortController();
      let flushedTo = 0n;
      const done = new WalReceiver({
        connection,
        store,
        slotName: `warden_${name}`,
        keys,
        signal: stop.signal,
        onFlush: (lsn) => (flushedTo = lsn),
        // The second run resumes past the leftover's segment: a recorded gap, streamed over.
        continueAfterGap: true,
      }).run();
      return { flushed: () => flushedTo, stop: async () => (stop.abort(), await done) };
    };
    const first = receive();
    await cluster.query('INSERT INTO t VALUES ($1)', [name]);
    const [row] = await cluster.query<{ lsn: string; segment: string }>(
      'SELECT pg_current_wal_lsn()::text AS lsn, pg_walfile_name(pg_current_wal_lsn()) AS segment',
    );
    await waitFor(() => first.flushed() >= parseLsn(row!.lsn), 'the first receiver flushes the row');
    await first.stop();
    const key = `wal/00000001/${row!.segment}.partial`;
    const recordKey = `wal/00000001/${row!.segment}.json`;
    if (forged) {
      const repository = await Repository.open(store, { identities: [identity] });
      const { raw, validBytes } = await readPartialSegment(repository, { key, segment: row!.segment });
      const partial = await PartialWriter.create(row!.segment, [identity.recipient], {
        key: stranger,
        systemId: repository.meta.systemId,
      });
      await store.putBuffer(
        key,
        Buffer.concat([partial.preamble, partial.frame(raw.subarray(0, validBytes))]),
      );
    }

    await cluster.query('SELECT pg_switch_wal()');
    await cluster.query('INSERT INTO t VALUES ($1)', [`${name} later`]);
    await cluster.query('SELECT pg_switch_wal()');
    const [now] = await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    // The slot is lost (dropped) and the next receiver makes it again past the partial's segment
    // (after a checkpoint, since a new slot reserves WAL from the redo point). Advancing it is
    // refused now: a slot beyond the repository's WAL was consumed by another.
    await waitFor(async () => {
      try {
        await cluster.query('SELECT pg_drop_replication_slot($1)', [`warden_${name}`]);
        return true;
      } catch {
        return false; // the stopped receiver's walsender has not exited yet
      }
    }, 'the slot can be dropped');
    await cluster.query('CHECKPOINT');
    const second = receive();
    try {
      // The leftover is handled before streaming starts: once the receiver flushes, it is done.
      await waitFor(() => second.flushed() >= parseLsn(now!.lsn), 'the second receiver streams');
    } finally {
      await second.stop();
    }
    const stored = await store.list('wal/00000001/');
    if (forged) {
      assert.ok(stored.includes(key), 'the forged leftover is kept');
      assert.ok(!stored.includes(recordKey), 'and never archived under a record the receiver signs');
    } else {
      assert.ok(!stored.includes(key));
      const record = JSON.parse((await store.getBuffer(recordKey)).toString()) as SegmentRecord;
      assert.equal(record.container, 'sealed-partial');
      assert.equal(record.signature?.key, writer.id, 'the sealed-partial record is signed');
    }
  }
});
