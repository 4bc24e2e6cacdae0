import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { chmod, lstat, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { makeStateDirPrivate } from '../../src/embedded/embedded-cluster.ts';
import { isWardenError } from '../../src/errors.ts';
import { ensureIdentityFile } from '../../src/pipeline/encryption/keyring.ts';
import { serverRunAs } from '../../src/postgres/os-user.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { resolveRepositoryGroup } from '../../src/repository/fs/repository-group.ts';

// Everything here runs with umask 000 (this file is its own process under node --test): any
// mode not set explicitly would come out 0777/0666 and fail the assertions.
const previousUmask = process.umask(0);
let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'warden-modes-'));
  // Traversable (not listable), so the only thing keeping another user out is the repository's mode.
  await chmod(dir, 0o711);
});
after(async () => {
  process.umask(previousUmask);
  await rm(dir, { recursive: true, force: true });
});

/** The group tests give files to: `postgres`'s (the test machine's PostgreSQL user), not root's. */
function otherGroup() {
  const group = resolveRepositoryGroup('postgres', 'test');
  assert.notEqual(group.gid, process.getgid!(), 'a group other than our own');
  return group;
}

interface Entry {
  key: string;
  directory: boolean;
  mode: number;
  gid: number;
}

async function entries(root: string): Promise<Entry[]> {
  const found: Entry[] = [];
  const walk = async (current: string) => {
    const info = await lstat(current);
    found.push({
      key: path.relative(root, current) || '.',
      directory: info.isDirectory(),
      mode: info.mode & 0o7777,
      gid: info.gid,
    });
    if (info.isDirectory()) for (const name of await readdir(current)) await walk(path.join(current, name));
  };
  await walk(root);
  return found;
}

/** Writes one object through every write path of the store; `during` sees the temp file of a put. */
async function writeEverything(store: FsObjectStore, during: (temp: string) => Promise<void>) {
  await store.putBuffer('meta.json', Buffer.from('{}'));
  await store.put(
    'backups/b1/base.tar.zst',
    (async function* () {
      yield Buffer.from('first chunk');
      const [temp] = (await store.list('backups/b1', { includeIncomplete: true })).filter((k) =>
        k.includes('.tmp-'),
      );
      assert.ok(temp, 'the temp file exists while the put runs');
      await during(path.join(store.root, temp));
      yield Buffer.from('second chunk');
    })(),
  );
  assert.equal(await store.createExclusive('locks/backup.lock', Buffer.from('me')), true);
  await store.putBuffer('keys/k1.age', Buffer.from('key'));
  const appender = await store.openAppender('wal/00000001/000000010000000000000001.partial');
  await appender.append(Buffer.alloc(100, 1));
  await appender.sync();
  await appender.close();
}

test('a repository is private under umask 000: directories 0700, files 0600, temp files too', async () => {
  // Two missing parents above the root: created by the store, so private as well.
  const root = path.join(dir, 'private', 'nested', 'repo');
  const store = new FsObjectStore(root);
  let tempMode = -1;
  await writeEverything(store, async (temp) => {
    tempMode = (await stat(temp)).mode & 0o7777;
  });
  assert.equal(tempMode, 0o600, 'temp file before rename');
  const all = await entries(path.join(dir, 'private'));
  assert.ok(all.some((e) => e.key.endsWith('.partial')));
  assert.ok(all.some((e) => e.key.endsWith('backup.lock')));
  for (const entry of all)
    assert.equal(entry.mode, entry.directory ? 0o700 : 0o600, `${entry.key}: 0${entry.mode.toString(8)}`);
  assert.deepEqual((await store.auditModes()).looseCount, 0);
});

test('with a group: directories 0750, files 0640, owned by that group, under umask 000', async () => {
  const group = otherGroup();
  const root = path.join(dir, 'shared', 'repo');
  const store = new FsObjectStore(root, { group });
  let temp: { mode: number; gid: number } | undefined;
  await writeEverything(store, async (file) => {
    const info = await stat(file);
    temp = { mode: info.mode & 0o7777, gid: info.gid };
  });
  assert.deepEqual(temp, { mode: 0o640, gid: group.gid }, 'temp file before rename');
  for (const entry of await entries(path.join(dir, 'shared'))) {
    assert.equal(entry.mode, entry.directory ? 0o750 : 0o640, `${entry.key}: 0${entry.mode.toString(8)}`);
    assert.equal(entry.gid, group.gid, entry.key);
  }
  // The group's members read it; others do not (a process with only that gid, then only nogroup's).
  const segment = path.join(root, 'wal/00000001/000000010000000000000001.partial');
  const pgUser = serverRunAs()!;
  assert.equal(
    execFileSync('wc', ['-c', segment], { uid: pgUser.uid, gid: group.gid, encoding: 'utf8' }).split(' ')[0],
    '100',
  );
  const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
  const nogroup = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim());
  assert.throws(() => execFileSync('wc', ['-c', segment], { uid: nobody, gid: nogroup, stdio: 'ignore' }));
  assert.equal((await store.auditModes()).looseCount, 0);
});

test('an appended partial segment from before is given the policy when reopened', async () => {
  const root = path.join(dir, 'old-partial');
  mkdirSync(path.join(root, 'wal/00000001'), { recursive: true, mode: 0o700 });
  const partial = path.join(root, 'wal/00000001/000000010000000000000002.partial');
  writeFileSync(partial, Buffer.alloc(10), { mode: 0o644 });
  const appender = await new FsObjectStore(root).openAppender(
    'wal/00000001/000000010000000000000002.partial',
  );
  await appender.append(Buffer.alloc(10));
  await appender.close();
  assert.equal((await stat(partial)).mode & 0o7777, 0o600);
});

test('entries of an older repository looser than the policy are left alone, reported, and the fix works', async () => {
  const root = path.join(dir, 'older');
  mkdirSync(path.join(root, 'backups/b0'), { recursive: true, mode: 0o755 });
  writeFileSync(path.join(root, 'meta.json'), '{}', { mode: 0o644 });
  writeFileSync(path.join(root, 'backups/b0/backup.json'), '{}', { mode: 0o600 });
  const store = new FsObjectStore(root);
  await store.putBuffer('backups/b1/backup.json', Buffer.from('{}'));
  assert.equal((await stat(path.join(root, 'backups'))).mode & 0o777, 0o755, 'existing directory untouched');
  const audit = await store.auditModes();
  assert.equal(audit.policy, 'owner only');
  assert.deepEqual(
    audit.loose.map((e) => `${e.key} ${e.kind} ${e.mode}`),
    ['. directory 0755', 'backups directory 0755', 'backups/b0 directory 0755', 'meta.json file 0644'],
  );
  assert.equal(audit.looseCount, 4);
  execFileSync('sh', ['-c', audit.fix!]);
  assert.equal((await store.auditModes()).looseCount, 0);
  // Readable by others only (no group bits): loose under either policy.
  execFileSync('chmod', ['0604', path.join(root, 'meta.json')]);
  assert.deepEqual((await store.auditModes()).loose, [
    { key: 'meta.json', kind: 'file', mode: '0604', gid: 0 },
  ]);
  execFileSync('chmod', ['0600', path.join(root, 'meta.json')]);

  // With a group configured, group bits are fine only with that group; the fix gives them to it.
  const group = otherGroup();
  const shared = new FsObjectStore(root, { group });
  const mismatched = await shared.auditModes();
  assert.equal(mismatched.looseCount, 0, 'owner-only entries are within a group policy');
  execFileSync('chmod', ['g+r', path.join(root, 'meta.json')]);
  assert.deepEqual(
    (await shared.auditModes()).loose.map((e) => e.key),
    ['meta.json'],
    'group-readable by a group other than the configured one',
  );
  execFileSync('sh', ['-c', (await shared.auditModes()).fix!]);
  assert.equal((await shared.auditModes()).looseCount, 0);
  assert.equal((await stat(path.join(root, 'meta.json'))).gid, group.gid);
});

test('repository.group: flag > env > file, resolved by name or number; an unknown group refused naming the field', async () => {
  const group = otherGroup();
  const cwd = path.join(dir, 'config');
  mkdirSync(cwd, { recursive: true });
  writeFileSync(path.join(cwd, 'warden.yaml'), `repository:\n  path: ./repo\n  group: ${group.gid}\n`);
  const load = (flags: Record<string, string>, env: NodeJS.ProcessEnv = {}) =>
    loadConfig({ flags, env, cwd }).repository.group;
  assert.deepEqual(load({}), group, 'numeric id in the file');
  assert.deepEqual(load({}, { WARDEN_REPO_GROUP: 'root' }), { name: 'root', gid: 0 });
  assert.deepEqual(load({ repoGroup: 'postgres' }, { WARDEN_REPO_GROUP: 'root' }), group);
  assert.throws(
    () => load({ repoGroup: 'no-such-group-here' }),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_CONFIG_INVALID') && error.details.field === '--repo-group',
  );
  writeFileSync(path.join(cwd, 'warden.yaml'), 'repository:\n  group: no-such-group-here\n');
  assert.throws(
    () => load({}),
    (error: unknown) =>
      isWardenError(error, 'WARDEN_E_CONFIG_INVALID') && error.details.field === 'repository.group',
  );
});

test('./.warden is private: created 0700 for the identity; 0710 to the server user’s group when root', async () => {
  const state = path.join(dir, 'cwd', '.warden');
  const { created } = await ensureIdentityFile(path.join(state, 'identity.txt'));
  assert.equal(created, true);
  assert.equal((await stat(state)).mode & 0o7777, 0o700);
  assert.equal((await stat(path.join(state, 'identity.txt'))).mode & 0o7777, 0o600);

  // An older, umask-made .warden is closed when the embedded cluster starts.
  execFileSync('chmod', ['0755', state]);
  const runAs = serverRunAs();
  await makeStateDirPrivate(state, runAs);
  const info = await stat(state);
  if (runAs) {
    assert.equal(info.mode & 0o7777, 0o710);
    assert.equal(info.gid, runAs.gid);
  } else {
    assert.equal(info.mode & 0o7777, 0o700);
  }
});
