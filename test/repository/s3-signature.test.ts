import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WardenError } from '../../src/errors.ts';
import { startS3, type TestS3 } from '../harness/s3.ts';

// The test S3 server checks every request's SigV4 signature: these tests fail if it stopped
// checking (and so the rest of the S3 suite would no longer test signing).
let s3: TestS3;
before(async () => {
  s3 = await startS3();
});
after(async () => s3?.stop());

test('requests signed with the right secret are accepted', async () => {
  const store = await s3.newStore();
  await store.putBuffer('signed.json', Buffer.from('{}'));
  assert.deepEqual(await store.getBuffer('signed.json'), Buffer.from('{}'));
});

test('a wrong secret is refused with SignatureDoesNotMatch, for writes and reads', async () => {
  const bucket = await s3.createBucket();
  const prefix = 'signature';
  const right = await s3.newStore({ bucket, prefix });
  await right.putBuffer('object.json', Buffer.from('{}'));
  const wrong = await s3.newStore({
    bucket,
    prefix,
    credentials: { accessKeyId: s3.credentials.accessKeyId, secretAccessKey: 'not-the-secret' },
  });
  for (const attempt of [
    () => wrong.putBuffer('other.json', Buffer.from('{}')),
    () => wrong.getBuffer('object.json'),
  ]) {
    await assert.rejects(attempt, (error: unknown) => {
      assert.ok(error instanceof WardenError);
      assert.equal(error.code, 'WARDEN_E_REPO_IO');
      assert.equal(error.details.s3Code, 'SignatureDoesNotMatch');
      assert.equal(error.details.status, 403);
      return true;
    });
  }
  assert.equal(await right.stat('other.json'), undefined, 'the refused write stored nothing');
});
