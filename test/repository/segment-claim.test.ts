import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import { test } from 'node:test';
import { WardenError } from '../../src/errors.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import type { ObjectStore } from '../../src/repository/object-store.ts';
import { claimSegment } from '../../src/repository/segment-claim.ts';
import { tempDir } from '../harness/temp-dir.ts';

const KEY = 'wal/00000001/000000010000000000000008.claim';

/** Deletes fail while `cutOff` (the repository unreachable when a writer lets go). */
function faultyStore(inner: ObjectStore): ObjectStore & { cutOff: boolean } {
  const faults = { cutOff: false };
  return new Proxy(inner, {
    get(target, property) {
      if (property === 'cutOff') return faults.cutOff;
      if (property === 'delete')
        return async (key: string) => {
          if (faults.cutOff) throw new WardenError('WARDEN_E_REPO_IO', `injected fault deleting ${key}`);
          return target.delete(key);
        };
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
    set(_target, property, value) {
      if (property === 'cutOff') faults.cutOff = value as boolean;
      return true;
    },
  }) as ObjectStore & { cutOff: boolean };
}

test("a claim this process could not release (repository unreachable) does not block this process's next writer", async () => {
  const store = faultyStore(new FsObjectStore(await tempDir('claim')));
  const release = await claimSegment(store, KEY);
  store.cutOff = true;
  await assert.rejects(release());
  store.cutOff = false;
  assert.ok(await store.stat(KEY), 'the claim is still in the repository');
  // Without the fix this waits two minutes for the claim to turn stale.
  const timeout = AbortSignal.timeout(10_000);
  const again = await claimSegment(store, KEY, timeout);
  await again();
  assert.equal(await store.stat(KEY), undefined);
});

test("another live process's claim is waited for; a dead one's on this host is taken over at once", async () => {
  const store = new FsObjectStore(await tempDir('claim-other'));
  const live = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const claim = (pid: number) =>
      Buffer.from(JSON.stringify({ pid, host: os.hostname(), at: new Date().toISOString() }));
    await store.putBuffer(KEY, claim(live.pid!));
    await assert.rejects(claimSegment(store, KEY, AbortSignal.timeout(500)));
    const exited = once(live, 'exit');
    live.kill('SIGKILL');
    await exited;
    // The same claim, its writer now gone (killed mid-write): taken over without waiting.
    const release = await claimSegment(store, KEY, AbortSignal.timeout(5_000));
    await release();
  } finally {
    live.kill('SIGKILL');
  }
});
