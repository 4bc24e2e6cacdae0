import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CopyMessage,
  decodeBaseBackupMessage,
  decodeKeepalive,
  decodeXLogData,
  encodeStatusUpdate,
  pgTimeToDate,
} from '../../src/postgres/replication-messages.ts';

// Messages built byte by byte as the protocol documentation lays them out, not with the encoders
// under test: https://www.postgresql.org/docs/current/protocol-replication.html

function int64(value: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(value);
  return b;
}

test('the codes are the protocol letters', () => {
  assert.deepEqual(
    Object.fromEntries(Object.entries(CopyMessage).map(([name, code]) => [name, String.fromCharCode(code)])),
    {
      XLogData: 'w',
      PrimaryKeepalive: 'k',
      StandbyStatusUpdate: 'r',
      ArchiveData: 'd',
      Progress: 'p',
      NewArchive: 'n',
      Manifest: 'm',
    },
  );
});

test('BASE_BACKUP messages decode by kind: data, progress, new archive (two C strings), manifest, unknown', () => {
  const data = decodeBaseBackupMessage(Buffer.concat([Buffer.from('d'), Buffer.from('tar bytes')]));
  assert.equal(data.kind, 'archive-data');
  assert.equal(data.kind === 'archive-data' && data.payload.toString(), 'tar bytes');

  assert.deepEqual(decodeBaseBackupMessage(Buffer.concat([Buffer.from('p'), int64(123_456_789n)])), {
    kind: 'progress',
    doneBytes: 123_456_789,
  });
  assert.deepEqual(decodeBaseBackupMessage(Buffer.from('n16384.tar\0/srv/tblspc\0', 'latin1')), {
    kind: 'new-archive',
    name: '16384.tar',
    location: '/srv/tblspc',
  });
  // The main data directory's archive has an empty location.
  assert.deepEqual(decodeBaseBackupMessage(Buffer.from('nbase.tar\0\0', 'latin1')), {
    kind: 'new-archive',
    name: 'base.tar',
    location: '',
  });
  assert.deepEqual(decodeBaseBackupMessage(Buffer.from('m')), { kind: 'manifest' });
  assert.deepEqual(decodeBaseBackupMessage(Buffer.from('z')), { kind: 'unknown', code: 0x7a });
});

test('START_REPLICATION messages: XLogData and keepalive fields at their offsets; the status update layout', () => {
  const xlog = decodeXLogData(
    Buffer.concat([
      Buffer.from('w'),
      int64(0x1_0000_0028n),
      int64(0x1_0000_1000n),
      int64(5n),
      Buffer.from('WAL'),
    ]),
  );
  assert.equal(xlog.dataStart, 0x1_0000_0028n);
  assert.equal(xlog.walEnd, 0x1_0000_1000n);
  assert.equal(xlog.sendTime, 5n);
  assert.equal(xlog.payload.toString(), 'WAL');

  const keepalive = decodeKeepalive(
    Buffer.concat([Buffer.from('k'), int64(42n), int64(0n), Buffer.from([1])]),
  );
  assert.deepEqual(keepalive, { walEnd: 42n, sendTime: 0n, replyRequested: true });
  assert.equal(pgTimeToDate(0n).toISOString(), '2000-01-01T00:00:00.000Z');

  const now = new Date('2000-01-01T00:00:01Z');
  const update = encodeStatusUpdate(100n, 90n, true, now);
  assert.equal(update.length, 34);
  assert.equal(String.fromCharCode(update[0]!), 'r');
  assert.equal(update.readBigUInt64BE(1), 100n);
  assert.equal(update.readBigUInt64BE(9), 90n);
  // Applied = flushed: Warden has nothing to apply, and remote_apply commits must not wait forever.
  assert.equal(update.readBigUInt64BE(17), 90n);
  assert.equal(update.readBigInt64BE(25), 1_000_000n);
  assert.equal(update[33], 1);
});
