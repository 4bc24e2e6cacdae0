import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { byteProgressBar } from '../../src/cli/progress-bar.ts';

test('the backup progress bar shows done and total in the same binary unit', () => {
  const stream = new PassThrough();
  let output = '';
  stream.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const bar = byteProgressBar('backup', stream);
  const total = 24_224_768;
  bar.update(0, total);
  bar.update(total, total);
  bar.stop();
  assert.match(output, /23\.1 MiB\/23\.1 MiB/);
  assert.doesNotMatch(output, /24224768/);
});
