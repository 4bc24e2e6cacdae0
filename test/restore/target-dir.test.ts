import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isWardenError } from '../../src/errors.ts';
import {
  claimTarget,
  HELD_BACK,
  INCOMPLETE_MARKER,
  removeIncompleteRestore,
} from '../../src/restore/target-dir.ts';

/** The restore target's lifecycle on its own (the real restores are in test/faults/interrupt.test.ts). */

let root: string;
before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'warden-target-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function rejectsWith(work: Promise<unknown>, code: string) {
  await assert.rejects(work, (error: unknown) => isWardenError(error) && error.code === code);
}

test('a claimed target is marked until complete() puts the held-back files in place', async () => {
  const dir = path.join(root, 'complete');
  const target = await claimTarget(dir);
  assert.deepEqual(await readdir(dir), [INCOMPLETE_MARKER]);
  await mkdir(path.join(dir, 'global'));
  for (const staged of HELD_BACK.values()) await writeFile(path.join(dir, staged), 'x');
  await target.complete();
  assert.deepEqual((await readdir(dir)).sort(), ['PG_VERSION', 'global']);
  assert.deepEqual(await readdir(path.join(dir, 'global')), ['pg_control']);
});

test('giveBack empties a directory that was there, with its mode, and removes one it made', async () => {
  const existing = path.join(root, 'existing');
  await mkdir(existing);
  await chmod(existing, 0o751);
  const claimed = await claimTarget(existing);
  await chmod(existing, 0o700);
  await writeFile(path.join(existing, 'base'), 'x');
  await claimed.giveBack();
  assert.deepEqual(await readdir(existing), []);
  assert.equal((await stat(existing)).mode & 0o777, 0o751);

  const made = path.join(root, 'made');
  await mkdir(`${made}_tablespaces`);
  await writeFile(path.join(`${made}_tablespaces`, 'kept'), 'x');
  await (await claimTarget(made)).giveBack();
  assert.ok(!existsSync(made));
  assert.ok(existsSync(path.join(`${made}_tablespaces`, 'kept')), 'a tablespace directory it found stays');
});

test('a leftover is refused, then cleaned back to how the interrupted restore found it', async () => {
  const dir = path.join(root, 'leftover');
  await claimTarget(dir); // "killed": never completed nor given back
  await writeFile(path.join(dir, 'backup_label'), 'x');
  await rejectsWith(claimTarget(dir), 'WARDEN_E_RESTORE_INCOMPLETE');
  const again = await claimTarget(dir, { cleanIncomplete: true });
  assert.ok(again.cleaned);
  assert.deepEqual(await readdir(dir), [INCOMPLETE_MARKER]);
  await again.giveBack();
  assert.ok(!existsSync(dir), 'the first restore had created it: gone again');

  await claimTarget(dir);
  assert.equal(await removeIncompleteRestore(dir), true);
  assert.ok(!existsSync(dir));
  assert.equal(await removeIncompleteRestore(dir), false, 'nothing to remove');
});

test('a restore still running is not removed; a directory without the marker is never touched', async () => {
  const running = path.join(root, 'running');
  await mkdir(running);
  const marker = {
    note: '',
    pid: process.ppid, // alive, on this host, not this process
    host: os.hostname(),
    startedAt: new Date().toISOString(),
    found: { existed: false, tablespacesExisted: false },
  };
  await writeFile(path.join(running, INCOMPLETE_MARKER), JSON.stringify(marker));
  await assert.rejects(
    claimTarget(running, { cleanIncomplete: true }),
    (error: unknown) => isWardenError(error, 'WARDEN_E_RESTORE_INCOMPLETE') && error.details.running === true,
  );
  await rejectsWith(removeIncompleteRestore(running), 'WARDEN_E_RESTORE_INCOMPLETE');
  assert.deepEqual(await readdir(running), [INCOMPLETE_MARKER]);

  const data = path.join(root, 'data');
  await mkdir(data);
  await writeFile(path.join(data, 'PG_VERSION'), '15\n');
  await rejectsWith(removeIncompleteRestore(data), 'WARDEN_E_TARGET_NOT_EMPTY');
  await rejectsWith(claimTarget(data, { cleanIncomplete: true }), 'WARDEN_E_TARGET_NOT_EMPTY');
  assert.equal(await readFile(path.join(data, 'PG_VERSION'), 'utf8'), '15\n');
});

test('a marker cut short (does not parse) is cleaned, but the directory is kept', async () => {
  const dir = path.join(root, 'torn');
  await mkdir(dir);
  await writeFile(path.join(dir, INCOMPLETE_MARKER), '{"no');
  await writeFile(path.join(dir, 'PG_VERSION.warden-incomplete'), '15\n');
  assert.equal(await removeIncompleteRestore(dir), true);
  assert.deepEqual(await readdir(dir), []);
});
