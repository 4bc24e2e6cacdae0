import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../src/logger.ts';

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  return { stream, text: () => text };
}

test('text log lines are one readable line each, secrets redacted', async () => {
  const out = capture();
  const logger = createLogger('info', { format: 'text', destination: out.stream });
  logger.warn({ code: 'WARDEN_E_REPO_IO', password: 'hunter2' }, 'repository slow');
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(out.text(), 'warden warn: repository slow code=WARDEN_E_REPO_IO password=[redacted]\n');
});

test('json log lines stay JSON for collectors', async () => {
  const out = capture();
  const logger = createLogger('info', { format: 'json', destination: out.stream });
  logger.info({ job: 'backup' }, 'done');
  await new Promise((resolve) => setImmediate(resolve));
  const entry = JSON.parse(out.text()) as { msg: string; job: string };
  assert.equal(entry.msg, 'done');
  assert.equal(entry.job, 'backup');
});
