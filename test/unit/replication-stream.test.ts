import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { StreamingCommand } from '../../src/postgres/replication-client.ts';

const KiB = 1024;

/** Message `i`: its index, then a byte pattern derived from it, so any overwrite shows. */
function message(i: number): Buffer {
  const size = [1 * KiB, 128 * KiB, 37 * KiB, 100 * KiB, 8][i % 5]!;
  const data = Buffer.alloc(size + 5, (i * 7) & 0xff);
  data[0] = 0x77; // 'w'
  if (size >= 4) data.writeUInt32BE(i, 1);
  return data;
}

test('recycled CopyData buffers stay intact while a slow consumer lags and the socket pauses', async () => {
  const total = 600; // ~60 MiB: the 8 MiB ring wraps several times
  let paused = false;
  let sent = 0;
  const pump = () => {
    // Like pg: the rest of a socket read is parsed even after pause() (here: two more messages).
    let extra = 2;
    while (sent < total && (!paused || extra-- > 0)) command.handleCopyData({ chunk: message(sent++) });
    if (sent === total) command.handleReadyForQuery();
  };
  const command = new StreamingCommand(
    'START_REPLICATION',
    { pause: () => (paused = true), resume: () => ((paused = false), setImmediate(pump)) },
    { reuseCopyBuffers: true },
  );
  setImmediate(pump);
  let received = 0;
  for await (const event of command.events) {
    assert.equal(event.kind, 'copy-data');
    if (event.kind !== 'copy-data') continue;
    // The consumer holds on to the event across turns of the event loop, as the WAL receiver
    // does while it writes a segment.
    await yieldToLoop();
    assert.ok(event.data.equals(message(received)), `message ${received} intact`);
    received += 1;
  }
  assert.equal(received, total);
});

test('without reuseCopyBuffers every CopyData message gets its own buffer', async () => {
  const command = new StreamingCommand('X', { pause: () => undefined, resume: () => undefined });
  for (let i = 0; i < 3; i += 1) command.handleCopyData({ chunk: message(i) });
  command.handleReadyForQuery();
  const kept: Buffer[] = [];
  for await (const event of command.events) if (event.kind === 'copy-data') kept.push(event.data);
  assert.deepEqual(
    kept.map((data, i) => data.equals(message(i))),
    [true, true, true],
  );
  assert.notEqual(kept[0]!.buffer, kept[2]!.buffer);
});
