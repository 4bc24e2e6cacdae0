import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ERROR_CODES, toWardenError, WardenError } from '../../src/errors.ts';

test('every error code is documented in docs/errors.md with its exit status', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  for (const [code, info] of Object.entries(ERROR_CODES)) {
    const row = doc.split('\n').find((line) => line.startsWith(`| \`${code}\` |`));
    assert.ok(row, `${code} missing from docs/errors.md`);
    assert.equal(row.split('|')[2]?.trim(), String(info.exit), `${code}: documented exit status differs`);
  }
});

test('a WardenError serializes its code, hint and details but not its cause', () => {
  const error = new WardenError('WARDEN_E_TARGET_NOT_EMPTY', 'not empty', {
    hint: 'use another dir',
    cause: new Error('x'),
  });
  assert.deepEqual(Object.keys(error.toJSON()).sort(), ['code', 'details', 'hint', 'message']);
  assert.equal(error.exitCode, 6);
});

test('a full disk met anywhere is WARDEN_E_REPO_IO naming ENOSPC (exit 8), not an internal error', async () => {
  // Linux's /dev/full fails every write with ENOSPC: a real full disk, without filling one.
  const failure = await writeFile('/dev/full', 'x').then(
    () => assert.fail('/dev/full accepted a write'),
    (error: unknown) => error,
  );
  const error = toWardenError(failure);
  assert.equal(error.code, 'WARDEN_E_REPO_IO');
  assert.equal(error.exitCode, 8);
  assert.match(error.message, /ENOSPC/);
  assert.equal(error.details.errno, 'ENOSPC');
  assert.equal(error.cause, failure);
});
