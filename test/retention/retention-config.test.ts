import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.ts';
import { isWardenError } from '../../src/errors.ts';
import { DEFAULT_RETENTION_POLICY, parseDuration } from '../../src/retention/retention-policy.ts';
import { tempDir } from '../harness/temp-dir.ts';

const DAY = 86_400_000;

async function configWith(yaml: string) {
  const dir = await tempDir('retention-config');
  await writeFile(path.join(dir, 'warden.yaml'), yaml);
  return loadConfig({ flags: {}, env: {}, cwd: dir });
}

test('retention defaults to GFS 7/4/12 with full backups kept 90 days', async () => {
  const config = await configWith('');
  assert.deepEqual(config.retention, DEFAULT_RETENTION_POLICY);
  assert.equal(config.retention.maxAge?.fullMs, 90 * DAY);
});

test('retention section overrides single fields and keeps the other defaults', async () => {
  const config = await configWith(
    'retention:\n  gfs: { daily: 14 }\n  keepLast: 3\n  recoveryWindow: 7d\n  maxAge: { full: 0 }\n',
  );
  assert.deepEqual(config.retention.gfs, { daily: 14, weekly: 4, monthly: 12 });
  assert.equal(config.retention.keepLast, 3);
  assert.equal(config.retention.recoveryWindowMs, 7 * DAY);
  assert.equal(config.retention.maxAge?.fullMs, 0);
});

test('an invalid retention duration is refused naming the field path', async () => {
  await assert.rejects(configWith('retention:\n  recoveryWindow: 7 days\n'), (error) => {
    assert.ok(isWardenError(error, 'WARDEN_E_CONFIG_INVALID'));
    assert.match(error.message, /retention\.recoveryWindow/);
    return true;
  });
  await assert.rejects(configWith('retention:\n  gfs: { daily: -1 }\n'), (error) => {
    assert.ok(isWardenError(error, 'WARDEN_E_CONFIG_INVALID'));
    assert.equal(error.details.field, 'retention.gfs.daily');
    return true;
  });
});

test('durations take s, m, h, d and w units', () => {
  assert.equal(parseDuration('90s', 'f'), 90_000);
  assert.equal(parseDuration('36h', 'f'), 36 * 3_600_000);
  assert.equal(parseDuration('2w', 'f'), 14 * DAY);
  assert.equal(parseDuration('0', 'f'), 0);
  assert.throws(
    () => parseDuration('7', 'f'),
    (e) => isWardenError(e, 'WARDEN_E_CONFIG_INVALID'),
  );
  assert.throws(
    () => parseDuration('1mo', 'f'),
    (e) => isWardenError(e, 'WARDEN_E_CONFIG_INVALID'),
  );
});
