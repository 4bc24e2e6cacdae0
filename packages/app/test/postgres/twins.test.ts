import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';

/**
 * The library keeps its own copy of the tool's PostgreSQL connection policy (so it imports
 * nothing of the tool). These checks fail when one copy changes and the other does not: the
 * code must be the same apart from imports, the error class and the note naming the twin.
 */
const library = (file: string) => readFile(new URL(`../../src/postgres/${file}`, import.meta.url), 'utf8');
const tool = (file: string) => readFile(new URL(`../../../../src/${file}`, import.meta.url), 'utf8');

function normalize(source: string): string {
  return source
    .replace(/^import [^;]+;\n/gm, '')
    .replace(/^\/\/ (Twin of|The same).*\n/gm, '')
    .replace(/\bWardenError\b/g, 'DataLayerError')
    .replace(/\n{2,}/g, '\n\n')
    .trim();
}

/** The text of `export [async] function name` up to its closing brace at column 0. */
function functionText(source: string, name: string): string {
  const start = new RegExp(`^export (async )?function ${name}\\b`, 'm').exec(source);
  assert.ok(start, `${name} found`);
  const end = source.indexOf('\n}\n', start.index);
  return normalize(source.slice(start.index, end + 2));
}

describe('the library and the tool connect to PostgreSQL by the same rules', () => {
  for (const [mine, theirs] of [
    ['tls-policy.ts', 'postgres/tls-policy.ts'],
    ['verified-tls.ts', 'util/verified-tls.ts'],
    ['pgpass.ts', 'postgres/pgpass.ts'],
    ['security-warning.ts', 'util/security-warning.ts'],
  ] as const) {
    test(`${mine} is the tool's ${theirs}`, async () => {
      assert.equal(normalize(await library(mine)), normalize(await tool(theirs)));
    });
  }

  test("loopback.ts is the tool's host classification", async () => {
    const [mine, theirs] = [await library('loopback.ts'), await tool('util/loopback.ts')];
    for (const name of ['isLoopbackHost', 'unbracket', 'canonicalHost']) {
      assert.equal(functionText(mine, name), functionText(theirs, name), name);
    }
  });

  test('password sources and TLS modes are looked up as the tool does', async () => {
    const [mine, theirs] = [await library('password-source.ts'), await tool('postgres/password-source.ts')];
    for (const name of ['resolvePassword', 'readPasswordFile', 'runPasswordCommand']) {
      assert.equal(functionText(mine, name), functionText(theirs, name), name);
    }
    const [modes, config] = [await library('tls-mode.ts'), await tool('postgres/connection-config.ts')];
    for (const name of ['parseTlsMode', 'decodeUrlPart']) {
      assert.equal(functionText(modes, name), functionText(config, name), name);
    }
    const table = (source: string) => /const TLS_MODES[^}]+\}/.exec(source)?.[0];
    assert.ok(table(modes));
    assert.equal(table(modes), table(config));
  });
});
