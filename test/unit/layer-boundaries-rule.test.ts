import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

// The ESLint rule `warden/layer-boundaries` (eslint-rules/layer-boundaries.js) as the repository
// configures it (eslint.config.js): linted through ESLint's own API with the real configuration,
// so removing the rule or its zones from the configuration fails here, not only the rule's logic.

const root = fileURLToPath(new URL('../../', import.meta.url));
const eslint = new ESLint({ cwd: root });
const RULE = 'warden/layer-boundaries';

/** The layer-rule messages for `code` linted as if it were the file at `file` (repository-relative). */
async function refusals(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${root}${file}` });
  assert.ok(result, 'one result per text');
  // A file the configuration ignores yields only a warning; it must be linted for real.
  assert.ok(!result.messages.some((m) => m.ruleId === null && /ignored/.test(m.message)), file);
  return result.messages.filter((m) => m.ruleId === RULE).map((m) => m.message);
}

test('the layer rule is configured, as an error, for the library and the backup layers', async () => {
  for (const file of ['packages/app/src/cache/probe.ts', 'src/backup/probe.ts', 'src/restore/probe.ts']) {
    const config = await eslint.calculateConfigForFile(`${root}${file}`);
    const setting = config.rules?.[RULE];
    assert.ok(setting, `${RULE} applies to ${file}`);
    assert.ok([2, 'error'].includes(Array.isArray(setting) ? setting[0] : setting), `${RULE} is an error`);
  }
});

test('the service library may not import the tool', async () => {
  const file = 'packages/app/src/cache/probe.ts';
  const refused = await refusals(
    file,
    [
      "import { backup } from '../../../../src/backup/base-backup.ts';",
      "export { WardenError } from '../../../../src/errors.ts';",
      "export const later = () => import('../../../../src/cli/main.ts');",
      "import { Command } from 'commander';",
      '',
    ].join('\n'),
  );
  assert.equal(refused.length, 4, refused.join('\n'));
  for (const message of refused) assert.match(message, /crosses a layer boundary: @warden\/app is published/);
  assert.match(refused[0]!, /^\.\.\/\.\.\/\.\.\/\.\.\/src\/backup\/base-backup\.ts /);
  assert.match(refused[3]!, /^commander /);
});

test('the service library may import its own files, its dependencies and Node built-ins', async () => {
  const refused = await refusals(
    'packages/app/src/cache/probe.ts',
    [
      "import { Cache } from './cache.ts';",
      "import type { Logger } from '../logger.ts';",
      "import { Redis } from 'ioredis';",
      "import pg from 'pg';",
      "import { createHash } from 'node:crypto';",
      'export const used = [Cache, Redis, pg, createHash] as const;',
      'export type L = Logger;',
      '',
    ].join('\n'),
  );
  assert.deepEqual(refused, []);
});

test('a backup-layer file may not import the daemon or the CLI', async () => {
  for (const file of ['src/backup/probe.ts', 'src/verify/probe.ts', 'src/pipeline/encryption/probe.ts']) {
    const up = file.split('/').length - 2 === 1 ? '..' : '../..';
    const refused = await refusals(
      file,
      [
        `import { Daemon } from '${up}/daemon/daemon.ts';`,
        `export * from '${up}/cli/main.ts';`,
        'export const used = Daemon;',
        '',
      ].join('\n'),
    );
    assert.equal(refused.length, 2, `${file}: ${refused.join('\n')}`);
    for (const message of refused)
      assert.match(message, /the backup layers sit below the daemon and the CLI/);
  }
});

test('a backup-layer file may import lower layers, and the daemon may import the backup layers', async () => {
  const backup = await refusals(
    'src/backup/probe.ts',
    [
      "import type { ObjectStore } from '../repository/object-store.ts';",
      "import { WardenError } from '../errors.ts';",
      'export type S = ObjectStore;',
      'export const used = WardenError;',
      '',
    ].join('\n'),
  );
  assert.deepEqual(backup, []);
  const daemon = await refusals(
    'src/daemon/probe.ts',
    [
      "import * as cli from '../cli/main.ts';",
      "import * as backup from '../backup/base-backup.ts';",
      'export const used = [cli, backup];',
      '',
    ].join('\n'),
  );
  assert.deepEqual(daemon, []);
});
