import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import type { S3ObjectStore } from '../../src/repository/s3/s3-object-store.ts';
import { startFaultProxy, startS3, type FaultProxy, type FaultRule, type TestS3 } from '../harness/s3.ts';
import { hasCode, objectStoreContract } from './object-store-contract.ts';

let s3: TestS3;
let proxy: FaultProxy;
const stores: S3ObjectStore[] = [];
before(async () => {
  s3 = await startS3();
  proxy = await startFaultProxy(s3);
});
after(async () => {
  for (const store of stores) store.destroy();
  await proxy?.stop();
  await s3?.stop();
});

/** A store that talks to the S3 server through the fault proxy, with a fast retry schedule. */
async function proxiedStore(maxAttempts = 6): Promise<S3ObjectStore> {
  const bucket = await s3.createBucket();
  const store = await s3.newStore({
    bucket,
    endpoint: proxy.endpoint,
    partSize: 5 * 1024 * 1024,
    retry: { maxAttempts, baseDelayMs: 20, maxDelayMs: 200 },
    requestTimeoutMs: 2_000,
  });
  stores.push(store);
  return store;
}

const isPartUpload = (r: { method: string; url: string }) =>
  r.method === 'PUT' && r.url.includes('partNumber=');
const isWrite = (r: { method: string; url: string }) => r.method === 'PUT' || r.method === 'POST';

/** Every contract test again, while the proxy answers some requests with faults (bounded). */
objectStoreContract('s3 through a fault proxy', async () => {
  const store = await proxiedStore();
  proxy.setFaults([
    { match: isPartUpload, fault: { kind: 'drop-mid-upload', afterBytes: 1024 * 1024 }, times: 1 },
    { match: isWrite, fault: { kind: 'status', status: 503 }, times: 2 },
    { match: isPartUpload, fault: { kind: 'drop-response' }, times: 1 },
    { fault: { kind: 'slow', delayMs: 300 }, times: 2 },
    { match: (r) => r.method === 'GET', fault: { kind: 'status', status: 500 }, times: 1 },
  ]);
  return store;
});

test('a multipart upload survives 5xx, resets mid-part and slow answers, and keeps every byte', async () => {
  const store = await proxiedStore();
  const faults: FaultRule[] = [
    { match: isPartUpload, fault: { kind: 'drop-mid-upload', afterBytes: 2 * 1024 * 1024 }, times: 2 },
    { match: isPartUpload, fault: { kind: 'status', status: 503 }, times: 2 },
    { match: isPartUpload, fault: { kind: 'status', status: 500 }, times: 1 },
    { match: isPartUpload, fault: { kind: 'slow', delayMs: 500 }, times: 2 },
    { match: (r) => r.method === 'POST', fault: { kind: 'status', status: 503 }, times: 1 },
  ];
  proxy.setFaults(faults);
  const before = { ...proxy.injected };
  const data = randomBytes(26 * 1024 * 1024);
  async function* source() {
    for (let offset = 0; offset < data.length; offset += 512 * 1024)
      yield data.subarray(offset, offset + 512 * 1024);
  }
  assert.deepEqual(await store.put('backups/f/base.tar.zst', source()), { size: data.length });
  proxy.setFaults([]);
  const injected = Object.entries(proxy.injected).reduce(
    (n, [kind, count]) => n + count - (before[kind] ?? 0),
    0,
  );
  assert.ok(injected >= 6, `faults were injected (${injected})`);
  assert.ok((await store.getBuffer('backups/f/base.tar.zst')).equals(data));
});

test('a GET cut off mid-body resumes from where it broke', async () => {
  const store = await proxiedStore();
  const data = randomBytes(12 * 1024 * 1024);
  await store.putBuffer('wal/00000001/seg.zst', data);
  const cutAfter = 5 * 1024 * 1024;
  proxy.setFaults([
    { match: (r) => r.method === 'GET', fault: { kind: 'drop-mid-body', afterBytes: cutAfter }, times: 1 },
  ]);
  const injectedBefore = proxy.injected['drop-mid-body'] ?? 0;
  const requestsBefore = proxy.requests.length;
  assert.ok((await store.getBuffer('wal/00000001/seg.zst')).equals(data));
  proxy.setFaults([]);
  assert.equal((proxy.injected['drop-mid-body'] ?? 0) - injectedBefore, 1, 'the body was cut off once');
  // The read went on with a ranged GET from a byte past the start, not from the beginning.
  const gets = proxy.requests.slice(requestsBefore).filter((r) => r.method === 'GET');
  const resumed = gets
    .map((r) => /^bytes=(\d+)-$/.exec(r.range ?? '')?.[1])
    .filter((start) => start !== undefined);
  assert.equal(resumed.length, 1, JSON.stringify(gets));
  const start = Number(resumed[0]);
  assert.ok(start > 0 && start <= cutAfter, `resumed at byte ${start}`);
});

test('when retries are exhausted a put fails with WARDEN_E_REPO_IO naming the key, and leaves no object', async () => {
  const store = await proxiedStore(3);
  proxy.setFaults([{ match: isPartUpload, fault: { kind: 'status', status: 503 }, times: 50 }]);
  const data = randomBytes(11 * 1024 * 1024);
  const error = await store.put('backups/g/base.tar.zst', Readable.from([data])).then(
    () => assert.fail('put succeeded'),
    (e: unknown) => e,
  );
  hasCode('WARDEN_E_REPO_IO')(error);
  const details = (error as { details: Record<string, unknown> }).details;
  assert.equal(details.object, 'backups/g/base.tar.zst');
  assert.equal(details.status, 503);
  proxy.setFaults([]);
  assert.equal(await store.stat('backups/g/base.tar.zst'), undefined);
  assert.deepEqual(await store.list('backups/', { includeIncomplete: true }), []);
});

test('when retries are exhausted on connection resets, putBuffer and getBuffer fail with WARDEN_E_REPO_IO', async () => {
  const store = await proxiedStore(3);
  await store.putBuffer('backups/h/backup.json', Buffer.from('{}'));
  proxy.setFaults([{ fault: { kind: 'drop-mid-upload', afterBytes: 0 }, times: 20 }]);
  await assert.rejects(store.putBuffer('backups/h/backup.json', randomBytes(4096)), (error: unknown) => {
    hasCode('WARDEN_E_REPO_IO')(error);
    assert.equal((error as { details: Record<string, unknown> }).details.object, 'backups/h/backup.json');
    return true;
  });
  await assert.rejects(store.getBuffer('backups/h/backup.json'), hasCode('WARDEN_E_REPO_IO'));
  proxy.setFaults([]);
  assert.equal((await store.getBuffer('backups/h/backup.json')).toString(), '{}', 'old object intact');
});
