import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { CopyDataTap } from '../../src/postgres/copy-data-tap.ts';

/** One protocol message: type byte, int32 length (counting itself), payload. */
function message(type: string, payload: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header[0] = type.charCodeAt(0);
  header.writeUInt32BE(payload.length + 4, 1);
  return Buffer.concat([header, payload]);
}
const copyData = (subtype: string, body: Buffer) => message('d', Buffer.concat([Buffer.from(subtype), body]));

/** What BASE_BACKUP sends: a result set, CopyOut, archive data between other CopyData, the end. */
function baseBackupStream() {
  const bulk: Buffer[] = [];
  const messages: Buffer[] = [];
  const expectedPassed: Array<{ message: Buffer; bulkBefore: number }> = [];
  let bulkBytes = 0;
  const pass = (m: Buffer) => {
    messages.push(m);
    expectedPassed.push({ message: m, bulkBefore: bulkBytes });
  };
  pass(message('T', randomBytes(40)));
  pass(message('D', randomBytes(30)));
  pass(message('C', Buffer.from('SELECT 1\0')));
  pass(message('H', Buffer.from([0, 0, 0])));
  pass(copyData('n', Buffer.from('base.tar\0\0')));
  for (let i = 0; i < 40; i += 1) {
    // ~32 KiB messages, some tiny, one empty; progress reports in between
    const body = randomBytes(i === 7 ? 0 : i % 9 === 0 ? 3 : 32_000 + i);
    bulk.push(body);
    messages.push(copyData('d', body));
    bulkBytes += body.length;
    if (i % 10 === 5) pass(copyData('p', randomBytes(8)));
  }
  pass(copyData('m', randomBytes(1000)));
  pass(message('c', Buffer.alloc(0))); // CopyDone: a message with no payload at all
  pass(message('C', Buffer.from('BASE_BACKUP\0')));
  pass(message('Z', Buffer.from('I')));
  return { stream: Buffer.concat(messages), bulk: Buffer.concat(bulk), expectedPassed };
}

function run(stream: Buffer, chunkSizes: number[]) {
  const socket = new EventEmitter();
  const passed: Array<{ message: Buffer; bulkBefore: number }> = [];
  const afterEnd: Buffer[] = [];
  const bulk: Buffer[] = [];
  let bulkBytes = 0;
  let ended = false;
  const tap: { current?: CopyDataTap } = {};
  // pg's listener: after ReadyForQuery the command is over and the tap is taken off.
  socket.on('data', (chunk: Buffer) => {
    if (ended) {
      afterEnd.push(chunk);
      return;
    }
    passed.push({ message: chunk, bulkBefore: bulkBytes });
    if (chunk[0] === 'Z'.charCodeAt(0)) {
      ended = true;
      tap.current!.uninstall();
    }
  });
  tap.current = new CopyDataTap(socket, 'd'.charCodeAt(0), (piece) => {
    bulk.push(Buffer.from(piece));
    bulkBytes += piece.length;
  });
  let offset = 0;
  for (let i = 0; offset < stream.length; i += 1) {
    const size = chunkSizes[i % chunkSizes.length]!;
    socket.emit('data', stream.subarray(offset, offset + size));
    offset += size;
  }
  return { passed, bulk: Buffer.concat(bulk), afterEnd: Buffer.concat(afterEnd), socket };
}

test('archive data goes to the block sink and every other message reaches pg whole and in order', () => {
  const { stream, bulk, expectedPassed } = baseBackupStream();
  const trailer = message('N', Buffer.from('a notice after the command\0'));
  for (const sizes of [[1], [2, 3, 5, 7], [4096], [65_536, 17], [stream.length + trailer.length]]) {
    const result = run(Buffer.concat([stream, trailer]), sizes);
    assert.ok(result.bulk.equals(bulk), `bulk bytes, chunks ${sizes.join('/')}`);
    assert.equal(result.passed.length, expectedPassed.length);
    result.passed.forEach((got, i) => {
      assert.ok(got.message.equals(expectedPassed[i]!.message), `message ${i}, chunks ${sizes.join('/')}`);
      assert.equal(got.bulkBefore, expectedPassed[i]!.bulkBefore, `order of message ${i}`);
    });
    // After ReadyForQuery the socket is pg's again: the rest of the chunk and later ones.
    assert.ok(result.afterEnd.equals(trailer), `bytes after the command, chunks ${sizes.join('/')}`);
    assert.equal(result.socket.listenerCount('data'), 1);
  }
});
