import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isWardenError } from '../../src/errors.ts';
import { claimOwnerRecord, readOwnerRecord } from '../../src/util/owner-record.ts';
import { processIdentity, processLiveness } from '../../src/util/process-identity.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'warden-owner-'));
});
after(async () => rm(dir, { recursive: true, force: true }));

test('a process is alive by PID and start time: a reused PID or an exited process is dead', async () => {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  try {
    const identity = processIdentity(child.pid!)!;
    assert.equal(processLiveness(identity), 'alive');
    assert.equal(processLiveness({ ...identity, startTicks: identity.startTicks! + 1 }), 'dead');
    // Older records without a start time: the PID alone, never taken from a live process.
    assert.equal(processLiveness({ pid: child.pid!, startedAt: 'x' }), 'alive');
  } finally {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  assert.equal(processLiveness(processIdentity(process.pid)!), 'alive');
  assert.equal(processLiveness({ pid: child.pid!, startTicks: 1, startedAt: 'x' }), 'dead');
  assert.equal(processLiveness({ pid: -1, startedAt: 'x' }), 'dead');
});

test('a claim is exclusive, a record that names no process is taken over, release leaves another owner alone', async () => {
  const file = path.join(dir, 'place.json');
  await writeFile(file, '{"half":');
  const claim = await claimOwnerRecord(file, 'the test place', { note: 1 });
  const record = await readOwnerRecord(file);
  assert.equal(record?.pid, process.pid);
  assert.equal(record?.note, 1);
  await claim.update({ note: 2 });
  assert.equal((await readOwnerRecord(file))?.note, 2);

  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  try {
    // Another process took the place (say ours was judged dead): our release must not remove it.
    const other = processIdentity(child.pid!)!;
    await writeFile(file, JSON.stringify(other));
    await claim.release();
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), other);
    await assert.rejects(claimOwnerRecord(file, 'the test place'), (error: unknown) => {
      assert.ok(isWardenError(error, 'WARDEN_E_ALREADY_RUNNING'));
      assert.equal(error.details.pid, child.pid);
      return true;
    });
  } finally {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  const taken = await claimOwnerRecord(file, 'the test place');
  assert.equal((await readOwnerRecord(file))?.pid, process.pid);
  await taken.release();
  assert.equal(await readOwnerRecord(file), undefined);
});
