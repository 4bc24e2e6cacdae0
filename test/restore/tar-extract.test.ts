import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import tar from 'tar-stream';
import { extractTar } from '../../src/restore/tar-extract.ts';

const MiB = 1024 * 1024;

interface Entry {
  name: string;
  type?: 'directory' | 'symlink';
  data?: Buffer;
  linkname?: string;
  mode?: number;
}

/** A ustar archive as tar-stream packs it (the layout PostgreSQL writes). */
async function pack(entries: Entry[]): Promise<Buffer> {
  const packer = tar.pack();
  for (const entry of entries) {
    if (entry.type === 'directory') packer.entry({ name: entry.name, type: 'directory', mode: 0o700 });
    else if (entry.type === 'symlink')
      packer.entry({ name: entry.name, type: 'symlink', linkname: entry.linkname! });
    else packer.entry({ name: entry.name, mode: entry.mode ?? 0o600 }, entry.data ?? Buffer.alloc(0));
  }
  packer.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of packer as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function* inChunks(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-tar-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('every file, directory and symlink lands intact, whatever the chunk boundaries', async () => {
  const files: Entry[] = [
    { name: 'PG_VERSION', data: Buffer.from('15\n') },
    { name: 'empty', data: Buffer.alloc(0) },
    { name: 'base/5/1259', data: randomBytes(8192 * 3) },
    { name: 'base/5/16384', data: randomBytes(3 * MiB + 511) },
    { name: 'base/5/16384_fsm', data: randomBytes(513), mode: 0o640 },
    { name: 'global/pg_control', data: randomBytes(512) },
  ];
  const archive = await pack([
    { name: 'base', type: 'directory' },
    { name: 'base/5', type: 'directory' },
    ...files,
    { name: 'pg_wal', type: 'directory' },
    { name: 'pg_tblspc/16500', type: 'symlink', linkname: '/srv/tablespace' },
  ]);
  for (const chunkSize of [1, 511, 4096 + 3, 2 * MiB, archive.length]) {
    if (chunkSize === 1 && archive.length > 64 * 1024) {
      // One byte at a time through the headers and the small files only.
      const head = archive.subarray(0, 40 * 1024);
      await withDir(async (dir) => {
        await assert.rejects(extractTar(inChunks(head, 1), dir, 'base.tar'), /ends in the middle/);
        assert.deepEqual(await readFile(path.join(dir, 'PG_VERSION'), 'utf8'), '15\n');
      });
      continue;
    }
    await withDir(async (dir) => {
      const count = await extractTar(inChunks(archive, chunkSize), dir, 'base.tar', {
        tablespaces: new Set(['16500']),
      });
      assert.equal(count, files.length, `chunks of ${chunkSize}`);
      for (const file of files) {
        const written = await readFile(path.join(dir, file.name));
        assert.ok(written.equals(file.data!), `${file.name} (chunks of ${chunkSize})`);
        assert.equal((await lstat(path.join(dir, file.name))).mode & 0o777, file.mode ?? 0o600);
      }
      assert.equal(await readlink(path.join(dir, 'pg_tblspc/16500')), '/srv/tablespace');
      assert.ok((await lstat(path.join(dir, 'pg_wal'))).isDirectory());
    });
  }
});

test('an entry outside the target, a damaged header or a pax header is refused', async () => {
  const evil = await pack([
    { name: 'ok', data: Buffer.from('fine') },
    { name: '../escaped', data: Buffer.from('nope') },
  ]);
  await withDir(async (dir) => {
    const target = path.join(dir, 'target');
    await mkdir(target);
    await assert.rejects(extractTar(inChunks(evil, 100_000), target, 'base.tar'), {
      code: 'WARDEN_E_REPO_CORRUPT',
      details: { object: 'base.tar', entry: '../escaped', problem: 'parent-component' },
    });
    assert.equal(existsSync(path.join(dir, 'escaped')), false);
  });

  const good = await pack([{ name: 'a', data: Buffer.from('data') }]);
  const damaged = Buffer.from(good);
  damaged[0] = 'b'.charCodeAt(0); // the name changes, the checksum does not
  await withDir(async (dir) => {
    await assert.rejects(extractTar(inChunks(damaged, 4096), dir, 'base.tar'), {
      code: 'WARDEN_E_REPO_CORRUPT',
      message: /checksum does not match/,
    });
    assert.deepEqual(await readdir(dir), []);
  });

  // A name of 124 characters goes into the ustar prefix field; one that cannot be split so
  // needs a pax header, which PostgreSQL never writes.
  const prefixed = `${'long-name/'.repeat(12)}file`;
  await withDir(async (dir) => {
    const archive = await pack([{ name: prefixed, data: Buffer.from('x') }]);
    await extractTar(inChunks(archive, 4096), dir, 'base.tar');
    assert.equal(await readFile(path.join(dir, prefixed), 'utf8'), 'x');
  });
  const pax = await pack([{ name: 'f'.repeat(120), data: Buffer.from('x') }]);
  await withDir(async (dir) => {
    await assert.rejects(extractTar(inChunks(pax, 4096), dir, 'base.tar'), {
      code: 'WARDEN_E_REPO_CORRUPT',
      message: /unsupported tar entry type 'x'/,
    });
  });
});

test('an archive cut short fails instead of leaving a short file looking complete', async () => {
  const archive = await pack([{ name: 'big', data: randomBytes(100_000) }]);
  await withDir(async (dir) => {
    await assert.rejects(extractTar(inChunks(archive.subarray(0, 50_000), 8192), dir, 'base.tar'), {
      code: 'WARDEN_E_REPO_CORRUPT',
      message: /base\.tar ends in the middle of an entry/,
    });
  });
});
