import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { isWardenError } from '../../src/errors.ts';
import { chownTree, serverRunAs } from '../../src/postgres/os-user.ts';
import { applyIncrementalTar } from '../../src/restore/incremental-apply.ts';
import { extractTar } from '../../src/restore/tar-extract.ts';
import { snapshotTree } from '../faults/helpers.ts';
import { hostileTar, type TarEntry } from '../harness/hostile-tar.ts';

/**
 * The extractor and the incremental combiner against archives PostgreSQL never writes: each is
 * refused as corrupt, naming the entry and a stable problem, and nothing outside the target is
 * created or changed.
 */

let root: string;
/** A directory beside the target that an archive tries to reach, with a file in it. */
let outside: string;
let victim: string;

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'warden-hostile-'));
  outside = path.join(root, 'outside');
  victim = path.join(outside, 'victim');
  await mkdir(outside);
  await writeFile(victim, 'original\n');
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let targets = 0;
async function newTarget(): Promise<string> {
  const target = path.join(root, `target-${(targets += 1)}`);
  await mkdir(target);
  return target;
}

async function* chunks(data: Buffer): AsyncGenerator<Buffer> {
  // Several chunks, so the refusal can come while earlier files are still being written.
  for (let at = 0; at < data.length; at += 1536) yield data.subarray(at, at + 1536);
}

/** A harmless start, as a crafted archive would have: refusal must not depend on being first. */
const PREFIX: TarEntry[] = [
  { name: 'PG_VERSION', data: '15\n' },
  { name: 'base/', type: 'directory' },
  { name: 'base/1/1259', data: Buffer.alloc(8192, 7) },
];

async function assertRefused(
  run: () => Promise<unknown>,
  expected: { entry: string; problem: string; object?: string },
): Promise<void> {
  const before = await snapshotTree(outside);
  await assert.rejects(run(), (error: unknown) => {
    assert.ok(isWardenError(error, 'WARDEN_E_REPO_CORRUPT'), `got ${String(error)}`);
    assert.deepEqual(error.details, {
      object: expected.object ?? 'base.tar',
      entry: expected.entry,
      problem: expected.problem,
    });
    return true;
  });
  assert.deepEqual(await snapshotTree(outside), before, 'nothing outside the target changed');
  assert.equal(await readFile(victim, 'utf8'), 'original\n');
  assert.equal(existsSync(path.join(root, 'escaped')), false);
  assert.equal(existsSync('/escaped-by-warden-test'), false);
}

function extract(entries: TarEntry[], target: string, tablespaces?: string[]): Promise<number> {
  return extractTar(chunks(hostileTar([...PREFIX, ...entries])), target, 'base.tar', {
    ...(tablespaces ? { tablespaces: new Set(tablespaces) } : {}),
  });
}

describe('the extractor refuses what PostgreSQL never writes', () => {
  test('escape 1: a directory symlink, then a file written through it', async () => {
    const target = await newTarget();
    await assertRefused(
      async () =>
        extract(
          [
            { name: 'pg_tblspc/16999', type: 'symlink', linkname: outside },
            { name: 'pg_tblspc/16999/authorized_keys', data: 'ssh-ed25519 AAAA attacker\n' },
          ],
          target,
          ['16999'],
        ),
      { entry: 'pg_tblspc/16999/authorized_keys', problem: 'symlink-in-path' },
    );
    assert.equal(existsSync(path.join(outside, 'authorized_keys')), false);
  });

  test('escape 2: a relative symlink, then a file written through it', async () => {
    const target = await newTarget();
    const relative = path.relative(path.join(target, 'pg_tblspc'), outside);
    await assertRefused(
      async () =>
        extract(
          [
            { name: 'pg_tblspc/16999', type: 'symlink', linkname: relative },
            { name: 'pg_tblspc/16999/authorized_keys', data: 'x' },
          ],
          target,
          ['16999'],
        ),
      { entry: 'pg_tblspc/16999', problem: 'tablespace-link-relative' },
    );
    // Anywhere else, a relative link is not a tablespace's and refused as such.
    await assertRefused(
      async () =>
        extract(
          [
            { name: 'base/evil', type: 'symlink', linkname: '../../outside' },
            { name: 'base/evil/authorized_keys', data: 'x' },
          ],
          await newTarget(),
          ['16999'],
        ),
      { entry: 'base/evil', problem: 'symlink-not-tablespace' },
    );
  });

  test('escape 3: a symlink, then a new directory through it', async () => {
    await assertRefused(
      async () =>
        extract(
          [
            { name: 'pg_tblspc/16999', type: 'symlink', linkname: outside },
            { name: 'pg_tblspc/16999/newdir/', type: 'directory' },
          ],
          await newTarget(),
          ['16999'],
        ),
      { entry: 'pg_tblspc/16999/newdir/', problem: 'symlink-in-path' },
    );
    assert.equal(existsSync(path.join(outside, 'newdir')), false);
  });

  test('escape 4: a symlink to a file, then the file overwritten (either order)', async () => {
    await assertRefused(
      async () =>
        extract(
          [
            { name: 'pg_tblspc/16999', type: 'symlink', linkname: victim },
            { name: 'pg_tblspc/16999', data: 'overwritten\n' },
          ],
          await newTarget(),
          ['16999'],
        ),
      { entry: 'pg_tblspc/16999', problem: 'duplicate-entry' },
    );
    // File first: the link would replace it, and is refused when the links are made.
    const target = await newTarget();
    await assertRefused(
      async () =>
        extract(
          [
            { name: 'pg_tblspc/16999', data: 'a file\n' },
            { name: 'pg_tblspc/16999', type: 'symlink', linkname: victim },
          ],
          target,
          ['16999'],
        ),
      { entry: 'pg_tblspc/16999', problem: 'duplicate-entry' },
    );
    assert.equal((await lstat(path.join(target, 'pg_tblspc/16999'))).isFile(), true);
  });

  test('a file named twice is refused (O_EXCL), not overwritten', async () => {
    const target = await newTarget();
    await assertRefused(async () => extract([{ name: 'PG_VERSION', data: '99\n' }], target), {
      entry: 'PG_VERSION',
      problem: 'duplicate-entry',
    });
  });

  test('a symlink already in a parent component on disk is never followed (lstat per component)', async () => {
    const target = await newTarget();
    await symlink(outside, path.join(target, 'global'));
    await assertRefused(async () => extract([{ name: 'global/pg_control', data: 'x' }], target), {
      entry: 'global/pg_control',
      problem: 'symlink-in-path',
    });
    assert.equal(existsSync(path.join(outside, 'pg_control')), false);
    // A file where a directory is needed is refused too.
    await assertRefused(async () => extract([{ name: 'PG_VERSION/x', data: 'x' }], await newTarget()), {
      entry: 'PG_VERSION/x',
      problem: 'not-a-directory',
    });
  });

  test('hard links, devices, FIFOs and other entry types are refused, not skipped', async () => {
    const cases: Array<[TarEntry, string]> = [
      [{ name: 'base/1/2619', type: 'hardlink', linkname: victim }, 'hard-link'],
      [{ name: 'base/1/2619', type: 'hardlink', linkname: 'PG_VERSION' }, 'hard-link'],
      [{ name: 'dev-null', type: 'chardev' }, 'device-file'],
      [{ name: 'dev-sda', type: 'blockdev' }, 'device-file'],
      [{ name: 'pipe', type: 'fifo' }, 'fifo'],
      [{ name: 'contiguous', type: 'contiguous', data: 'x' }, 'unsupported-type'],
    ];
    for (const [entry, problem] of cases) {
      const target = await newTarget();
      await assertRefused(async () => extract([entry], target), { entry: entry.name, problem });
      assert.equal(existsSync(path.join(target, entry.name)), false, entry.name);
    }
    await assertRefused(async () => extract([{ name: './', data: 'x' }], await newTarget()), {
      entry: './',
      problem: 'empty-name',
    });
  });

  test('absolute names and .. components are refused', async () => {
    const absolute = path.join(outside, 'planted');
    await assertRefused(async () => extract([{ name: absolute, data: 'x' }], await newTarget()), {
      entry: absolute,
      problem: 'absolute-path',
    });
    assert.equal(existsSync(absolute), false);
    await assertRefused(
      async () => extract([{ name: '/escaped-by-warden-test', data: 'x' }], await newTarget()),
      {
        entry: '/escaped-by-warden-test',
        problem: 'absolute-path',
      },
    );
    for (const name of ['../escaped', 'base/../../escaped', 'base/1/../../../outside/victim']) {
      await assertRefused(async () => extract([{ name, data: 'x' }], await newTarget()), {
        entry: name,
        problem: 'parent-component',
      });
    }
    await assertRefused(async () => extract([{ name: '..', type: 'directory' }], await newTarget()), {
      entry: '..',
      problem: 'parent-component',
    });
  });

  test("symlinks only at pg_tblspc/<oid> of the backup's tablespaces, absolute, outside the target", async () => {
    const cases: Array<[TarEntry, string[] | undefined, string]> = [
      [{ name: 'pg_wal', type: 'symlink', linkname: outside }, ['16999'], 'symlink-not-tablespace'],
      [{ name: 'pg_tblspc/abc', type: 'symlink', linkname: outside }, ['abc'], 'symlink-not-tablespace'],
      [{ name: 'pg_tblspc/1/2', type: 'symlink', linkname: outside }, ['1'], 'symlink-not-tablespace'],
      // A tablespace's own archive holds no links at all.
      [{ name: 'pg_tblspc/16999', type: 'symlink', linkname: outside }, undefined, 'symlink-not-tablespace'],
      [{ name: 'pg_tblspc/17000', type: 'symlink', linkname: outside }, ['16999'], 'tablespace-unknown'],
    ];
    for (const [entry, tablespaces, problem] of cases) {
      await assertRefused(async () => extract([entry], await newTarget(), tablespaces), {
        entry: entry.name,
        problem,
      });
    }
    const inside = [
      (t: string) => t,
      (t: string) => path.join(t, 'base'),
      (t: string) => `${t}/global/../base`,
    ];
    for (const linkTo of inside) {
      const target = await newTarget();
      await assertRefused(
        async () =>
          extract([{ name: 'pg_tblspc/16999', type: 'symlink', linkname: linkTo(target) }], target, [
            '16999',
          ]),
        {
          entry: 'pg_tblspc/16999',
          problem: 'tablespace-link-inside-target',
        },
      );
    }
  });

  test('a tablespace link is created last, after every file, and nothing is written through it', async () => {
    const target = await newTarget();
    const files = await extract(
      [
        { name: 'pg_tblspc/', type: 'directory' },
        { name: 'pg_tblspc/16999', type: 'symlink', linkname: outside },
        { name: 'global/pg_control', data: 'control' },
      ],
      target,
      ['16999'],
    );
    assert.equal(files, 3);
    assert.equal(await readlink(path.join(target, 'pg_tblspc/16999')), outside);
    assert.equal(await readFile(path.join(target, 'global/pg_control'), 'utf8'), 'control');
    assert.deepEqual(Object.keys(await snapshotTree(outside)), ['victim']);
  });
});

/** A directory as the previous backup of a chain left it, with tablespace links into `outside`. */
async function combined(): Promise<string> {
  const target = await newTarget();
  await mkdir(path.join(target, 'pg_tblspc'));
  await mkdir(path.join(target, 'base/1'), { recursive: true });
  await writeFile(path.join(target, 'base/1/1259'), Buffer.alloc(8192));
  await symlink(outside, path.join(target, 'pg_tblspc/16999'));
  await symlink(victim, path.join(target, 'pg_tblspc/16998'));
  return target;
}

function apply(entries: TarEntry[], target: string, tablespaces: string[] = ['16998', '16999']) {
  return applyIncrementalTar(Readable.from([hostileTar(entries)]), target, 'base.tar', {
    tablespaces: new Set(tablespaces),
  });
}

describe('the incremental combiner follows the same rules', () => {
  test("a file below the previous backup's tablespace link is refused (lstat per component)", async () => {
    await assertRefused(
      async () => apply([{ name: 'pg_tblspc/16999/authorized_keys', data: 'x' }], await combined()),
      {
        entry: 'pg_tblspc/16999/authorized_keys',
        problem: 'symlink-in-path',
      },
    );
    assert.equal(existsSync(path.join(outside, 'authorized_keys')), false);
  });

  test('a full file or an INCREMENTAL file naming a link is not written through it (O_NOFOLLOW)', async () => {
    await assertRefused(
      async () => apply([{ name: 'pg_tblspc/16998', data: 'overwritten\n' }], await combined()),
      {
        entry: 'pg_tblspc/16998',
        problem: 'is-a-symlink',
      },
    );
    await assertRefused(
      async () => apply([{ name: 'pg_tblspc/INCREMENTAL.16998', data: Buffer.alloc(12) }], await combined()),
      { entry: 'pg_tblspc/INCREMENTAL.16998', problem: 'is-a-symlink' },
    );
  });

  test('hard links, devices, FIFOs, absolute names, .. and stray links are refused', async () => {
    const cases: Array<[TarEntry, string]> = [
      [{ name: 'base/1/2619', type: 'hardlink', linkname: victim }, 'hard-link'],
      [{ name: 'dev-null', type: 'chardev' }, 'device-file'],
      [{ name: 'dev-sda', type: 'blockdev' }, 'device-file'],
      [{ name: 'pipe', type: 'fifo' }, 'fifo'],
      [{ name: path.join(outside, 'planted'), data: 'x' }, 'absolute-path'],
      [{ name: '../escaped', data: 'x' }, 'parent-component'],
      [{ name: 'base/evil', type: 'symlink', linkname: outside }, 'symlink-not-tablespace'],
      [{ name: 'pg_tblspc/16997', type: 'symlink', linkname: outside }, 'tablespace-unknown'],
      [{ name: 'base/1', data: 'x' }, 'not-a-file'],
    ];
    for (const [entry, problem] of cases) {
      await assertRefused(async () => apply([entry], await combined()), { entry: entry.name, problem });
    }
  });

  test('an incremental backup naming its tablespace links again replaces them; files land inside', async () => {
    const target = await combined();
    const elsewhere = path.join(root, 'moved-tablespace');
    const result = await apply(
      [
        { name: 'base/1/1259', data: Buffer.alloc(8192, 1) },
        { name: 'pg_tblspc/16999', type: 'symlink', linkname: elsewhere },
      ],
      target,
    );
    assert.equal(result.fullFiles, 1);
    assert.equal(await readlink(path.join(target, 'pg_tblspc/16999')), elsewhere);
    assert.equal((await readFile(path.join(target, 'base/1/1259')))[0], 1);
  });
});

test('chownTree gives the links themselves to the server user, never what they point to', async (t) => {
  const runAs = serverRunAs();
  if (!runAs) return t.skip('needs root (chownTree is a no-op otherwise)');
  const target = await combined();
  const owners = async () =>
    Promise.all([victim, outside].map(async (file) => [(await stat(file)).uid, (await stat(file)).gid]));
  const before = await owners();
  assert.notEqual(before[0]![0], runAs.uid);
  await chownTree(target, runAs);
  assert.equal((await lstat(path.join(target, 'pg_tblspc/16998'))).uid, runAs.uid, 'the link is chowned');
  assert.equal((await lstat(path.join(target, 'base/1/1259'))).uid, runAs.uid);
  assert.deepEqual(await owners(), before, 'what the links point to keeps its owner');
});
