import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { childLogger, silentLogger, type Logger } from '../src/logger.ts';

// Checked by the compiler: console fits the interface as it is.
const _consoleFits: Logger = console;

describe('the data layer logger interface', () => {
  test('a logger without child() gets the component in every call', () => {
    const calls: unknown[][] = [];
    const plain: Logger = {
      debug: (...args) => calls.push(['debug', ...args]),
      info: (...args) => calls.push(['info', ...args]),
      warn: (...args) => calls.push(['warn', ...args]),
      error: (...args) => calls.push(['error', ...args]),
    };
    const child = childLogger(plain, { component: 'cache' });
    child.warn({ key: 'k' }, 'miss');
    childLogger(child, { part: 'tier' }).error({ n: 1 });
    assert.deepEqual(calls, [
      ['warn', { component: 'cache', key: 'k' }, 'miss'],
      ['error', { component: 'cache', part: 'tier', n: 1 }],
    ]);
  });

  test('pino satisfies it and keeps its own child bindings', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger: Logger = pino({ level: 'debug' }, sink);
    childLogger(logger, { component: 'sessions' }).info({ id: 3 }, 'saved');
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(line.component, 'sessions');
    assert.equal(line.id, 3);
    assert.equal(line.msg, 'saved');
  });

  test('the silent logger stays silent through children', () => {
    assert.equal(childLogger(silentLogger, { component: 'cache' }), silentLogger);
  });
});
