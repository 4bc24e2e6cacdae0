import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { S3ObjectStore } from '../../src/repository/s3/s3-object-store.ts';
import { startFaultProxy, startS3, type FaultProxy, type TestS3 } from '../harness/s3.ts';

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

const PART = 5 * 1024 * 1024;

async function proxiedStore(): Promise<S3ObjectStore> {
  const store = await s3.newStore({ endpoint: proxy.endpoint, partSize: PART, queueSize: 2 });
  stores.push(store);
  return store;
}

/** Chunks of `size` bytes of `data`, the way a compressor hands them over. */
async function* chunks(data: Buffer, size: number) {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

/** The requests of one put, as `METHOD kind` (query names only), with each body length. */
function requestsSince(start: number) {
  return proxy.requests.slice(start).map((r) => {
    const query = new URL(r.url, 'http://x').searchParams;
    return `${r.method} ${[...query.keys()].filter((k) => k !== 'x-id').join(',')}`;
  });
}

test('an object that fits one part is stored with a single PutObject (and its size checked)', async () => {
  const store = await proxiedStore();
  const data = randomBytes(PART - 1);
  const start = proxy.requests.length;
  assert.deepEqual(await store.put('backups/a/backup_manifest.zst', chunks(data, 64 * 1024)), {
    size: data.length,
  });
  assert.deepEqual(requestsSince(start), ['PUT ', 'HEAD ']);
  assert.ok((await store.getBuffer('backups/a/backup_manifest.zst')).equals(data));
});

test('a larger object is a multipart upload of full parts and a shorter last one, in order', async () => {
  const store = await proxiedStore();
  const data = randomBytes(3 * PART + 1000);
  const start = proxy.requests.length;
  // Chunks that straddle part boundaries.
  assert.deepEqual(await store.put('backups/b/base.tar.zst', chunks(data, 777_777)), { size: data.length });
  const kinds = requestsSince(start);
  assert.equal(kinds[0], 'POST uploads');
  assert.equal(kinds.filter((k) => k === 'PUT partNumber,uploadId').length, 4);
  assert.deepEqual(kinds.slice(-2), ['POST uploadId', 'HEAD ']);
  assert.ok((await store.getBuffer('backups/b/base.tar.zst')).equals(data));
});

test('a part refused for good aborts the multipart upload: no object, no upload left open', async () => {
  const store = await s3.newStore({
    endpoint: proxy.endpoint,
    partSize: PART,
    queueSize: 2,
    retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20 },
  });
  stores.push(store);
  // The third part fails on every attempt while the others succeed.
  proxy.setFaults([
    {
      match: (r) => r.method === 'PUT' && r.url.includes('partNumber=3&'),
      fault: { kind: 'status', status: 500 },
      times: 10,
    },
  ]);
  const start = proxy.requests.length;
  try {
    await assert.rejects(store.put('backups/c/base.tar.zst', chunks(randomBytes(4 * PART), 1 << 20)), {
      code: 'WARDEN_E_REPO_IO',
    });
  } finally {
    proxy.setFaults([]);
  }
  assert.ok(requestsSince(start).includes('DELETE uploadId'), 'the upload was aborted');
  assert.equal(await store.stat('backups/c/base.tar.zst'), undefined);
  assert.deepEqual(await store.list('backups/', { includeIncomplete: true }), []);
});
