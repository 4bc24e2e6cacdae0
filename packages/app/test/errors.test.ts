import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { DATA_ERROR_CODES, DataLayerError, toDataLayerError } from '../src/errors.ts';
import { ERROR_CODES } from '../../../src/errors.ts';

describe('the data layer error catalogue', () => {
  test('keeps the stable WARDEN_E_* codes with the HTTP status and retryability the tool documents', () => {
    for (const [code, info] of Object.entries(DATA_ERROR_CODES)) {
      const tool = ERROR_CODES[code as keyof typeof ERROR_CODES];
      assert.ok(tool, `${code} is a Warden code`);
      assert.equal(info.http, tool.http, `${code} http`);
      assert.equal(
        (info as { retryable?: boolean }).retryable === true,
        (tool as { retryable?: boolean }).retryable === true,
        `${code} retryable`,
      );
    }
  });

  test('documents every code in docs/errors.md', async () => {
    const doc = await readFile(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
    for (const code of Object.keys(DATA_ERROR_CODES)) assert.ok(doc.includes(`\`${code}\``), code);
  });

  test('carries no CLI exit status', () => {
    const error = new DataLayerError('WARDEN_E_POOL_TIMEOUT', 'no connection');
    assert.equal(error.retryable, true);
    assert.equal(error.httpStatus, 503);
    assert.equal('exitCode' in error, false);
    assert.deepEqual(Object.keys(error.toJSON()).sort(), ['code', 'details', 'hint', 'message']);
  });

  test('wraps a foreign error as internal and keeps its own', () => {
    const own = new DataLayerError('WARDEN_E_NO_PRIMARY', 'none');
    assert.equal(toDataLayerError(own), own);
    const wrapped = toDataLayerError(new Error('boom'));
    assert.equal(wrapped.code, 'WARDEN_E_INTERNAL');
    assert.equal(wrapped.httpStatus, 500);
  });
});
