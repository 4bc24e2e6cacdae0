import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { S3ObjectStore } from '../../src/repository/s3/s3-object-store.ts';
import { startS3, type TestS3 } from '../harness/s3.ts';
import { objectStoreContract } from './object-store-contract.ts';

let s3: TestS3;
const stores: S3ObjectStore[] = [];
before(async () => {
  s3 = await startS3();
});
after(async () => {
  for (const store of stores) store.destroy();
  await s3?.stop();
});

objectStoreContract('s3', async () => {
  const store = await s3.newStore({ partSize: 5 * 1024 * 1024 });
  stores.push(store);
  return store;
});

test('s3: two prefixes in one bucket are separate repositories', async () => {
  const bucket = await s3.createBucket();
  const one = await s3.newStore({ bucket, prefix: 'one' });
  const two = await s3.newStore({ bucket, prefix: 'one/two' });
  stores.push(one, two);
  await one.putBuffer('warden-repo.json', Buffer.from('1'));
  await two.putBuffer('warden-repo.json', Buffer.from('2'));
  assert.equal(one.location, `s3://${bucket}/one`);
  assert.deepEqual(await two.list(''), ['warden-repo.json']);
  assert.equal((await one.getBuffer('warden-repo.json')).toString(), '1');
});
