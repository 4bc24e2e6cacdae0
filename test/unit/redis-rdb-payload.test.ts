import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WardenError } from '../../src/errors.ts';
import { RdbPayloadParser } from '../../src/redis-backup/rdb-payload-parser.ts';

const RDB = Buffer.concat([Buffer.from('REDIS0010'), Buffer.from([0xfa, 1, 2, 3, 0xff]), Buffer.alloc(8, 7)]);
const MARK = 'a'.repeat(20) + 'b'.repeat(20);
/** What follows the snapshot on the same connection (the replication stream): never part of it. */
const AFTER = Buffer.from('*1\r\n$4\r\nPING\r\n');

const lengthForm = Buffer.concat([Buffer.from('\n\n\n$' + RDB.length + '\r\n'), RDB, AFTER]);
const eofForm = Buffer.concat([Buffer.from('\n\n$EOF:' + MARK + '\r\n'), RDB, Buffer.from(MARK), AFTER]);

/** Feeds `input` in two pieces split at `at`; returns the RDB bytes and whether it completed. */
function feed(input: Buffer, at: number, maxBytes = 1 << 20) {
  const parser = new RdbPayloadParser(maxBytes, 'test');
  const out: Buffer[] = [];
  let done = false;
  for (const piece of [input.subarray(0, at), input.subarray(at)]) {
    if (done) break;
    const result = parser.push(piece);
    out.push(...result.data);
    done = result.done;
  }
  return { rdb: Buffer.concat(out), done, parser };
}

for (const [form, input] of [
  ['length', lengthForm],
  ['eof-mark', eofForm],
] as const) {
  test(`the ${form} form yields exactly the snapshot, split at every offset`, () => {
    for (let at = 0; at <= input.length; at += 1) {
      const { rdb, done, parser } = feed(input, at);
      assert.ok(done, `complete when split at ${at}`);
      assert.ok(rdb.equals(RDB), `the snapshot when split at ${at}`);
      assert.equal(parser.form, form);
    }
  });

  test(`the ${form} form cut anywhere before its end is WARDEN_E_REDIS_TRUNCATED`, () => {
    const end = input.length - AFTER.length;
    for (let cut = 0; cut < end; cut += 1) {
      const { done, parser } = feed(input.subarray(0, cut), cut);
      assert.equal(done, false);
      assert.throws(
        () => parser.end(),
        (e: unknown) => e instanceof WardenError && e.code === 'WARDEN_E_REDIS_TRUNCATED',
        `cut at ${cut}`,
      );
    }
  });
}

test('a length above the bound is refused from the header alone', () => {
  const parser = new RdbPayloadParser(1000, 'test');
  assert.throws(
    () => parser.push(Buffer.from('$1001\r\n')),
    (e: unknown) => e instanceof WardenError && e.code === 'WARDEN_E_RDB_TOO_LARGE',
  );
  const huge = new RdbPayloadParser(1000, 'test');
  assert.throws(
    () => huge.push(Buffer.from('$999999999999999999\r\n')),
    (e: unknown) => e instanceof WardenError && e.code === 'WARDEN_E_RDB_TOO_LARGE',
  );
});

test('an end-mark stream longer than the bound is refused', () => {
  const parser = new RdbPayloadParser(100, 'test');
  parser.push(Buffer.from(`$EOF:${MARK}\r\nREDIS0010`));
  assert.throws(
    () => parser.push(Buffer.alloc(200, 1)),
    (e: unknown) => e instanceof WardenError && e.code === 'WARDEN_E_RDB_TOO_LARGE',
  );
});

test('malformed headers, an error reply and a snapshot without the RDB magic are refused precisely', () => {
  const code = (input: string | Buffer) => {
    try {
      new RdbPayloadParser(1 << 20, 'test').push(Buffer.from(input));
      return 'accepted';
    } catch (error) {
      return (error as WardenError).code;
    }
  };
  assert.equal(code('$-1\r\n'), 'WARDEN_E_PROTOCOL');
  assert.equal(code('$12x\r\n'), 'WARDEN_E_PROTOCOL');
  assert.equal(code('$EOF:short\r\n'), 'WARDEN_E_PROTOCOL');
  assert.equal(code('$3\r\n'), 'WARDEN_E_PROTOCOL');
  assert.equal(code(`$${'9'.repeat(80)}`), 'WARDEN_E_PROTOCOL');
  assert.equal(code('-NOPERM this user has no permissions\r\n'), 'WARDEN_E_REDIS_ERROR');
  assert.equal(code('$20\r\nHELLO'), 'WARDEN_E_PROTOCOL');
  assert.equal(code('$20\r\nRED'), 'accepted');
});
