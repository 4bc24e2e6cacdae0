import type { Lsn } from '../wal/lsn.ts';

// The replication protocol's CopyData messages, by the code in their first byte: what
// START_REPLICATION and BASE_BACKUP send and what a standby answers. Every byte offset of the
// protocol is here; the backup and the WAL receiver only switch on the decoded kind.
// https://www.postgresql.org/docs/current/protocol-replication.html

/** CopyData message codes (the first byte). */
export const CopyMessage = {
  /** START_REPLICATION → client: WAL bytes ('w'). */
  XLogData: 0x77,
  /** START_REPLICATION → client: server position, maybe asking for a reply ('k'). */
  PrimaryKeepalive: 0x6b,
  /** Client → server: written/flushed/applied positions ('r'). */
  StandbyStatusUpdate: 0x72,
  /** BASE_BACKUP → client: bytes of the current archive or of the manifest ('d'). */
  ArchiveData: 0x64,
  /** BASE_BACKUP → client: bytes sent so far, with PROGRESS ('p'). */
  Progress: 0x70,
  /** BASE_BACKUP → client: a new archive starts: its name and tablespace location ('n'). */
  NewArchive: 0x6e,
  /** BASE_BACKUP → client: the manifest starts ('m'). */
  Manifest: 0x6d,
} as const;

/** Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC). */
const PG_EPOCH_OFFSET_US = 946_684_800_000_000n;

export interface XLogData {
  dataStart: Lsn;
  walEnd: Lsn;
  sendTime: bigint;
  payload: Buffer;
}

/** `w` message: byte 'w', int64 dataStart, int64 walEnd, int64 sendTime, WAL bytes. */
export function decodeXLogData(message: Buffer): XLogData {
  return {
    dataStart: message.readBigUInt64BE(1),
    walEnd: message.readBigUInt64BE(9),
    sendTime: message.readBigInt64BE(17),
    payload: message.subarray(25),
  };
}

/** `k` message: byte 'k', int64 walEnd, int64 sendTime, byte replyRequested. */
export function decodeKeepalive(message: Buffer): { walEnd: Lsn; sendTime: bigint; replyRequested: boolean } {
  return {
    walEnd: message.readBigUInt64BE(1),
    sendTime: message.readBigInt64BE(9),
    replyRequested: message[17] === 1,
  };
}

/**
 * Standby status update `r`: written, flushed and applied positions (each "last byte + 1"),
 * the client clock and whether the server should answer at once. Warden applies nothing: what it
 * has flushed is as far as it will ever go, so it reports applied = flushed. Reporting 0 (invalid)
 * would make a session with `synchronous_commit = remote_apply` wait forever when Warden is a
 * synchronous standby (docs/synchronous-standby.md).
 */
export function encodeStatusUpdate(written: Lsn, flushed: Lsn, replyNow: boolean, now = new Date()): Buffer {
  const message = Buffer.alloc(34);
  message[0] = CopyMessage.StandbyStatusUpdate;
  message.writeBigUInt64BE(written, 1);
  message.writeBigUInt64BE(flushed, 9);
  message.writeBigUInt64BE(flushed, 17);
  message.writeBigInt64BE(dateToPgTime(now), 25);
  message[33] = replyNow ? 1 : 0;
  return message;
}

/** A BASE_BACKUP CopyData message, decoded. `payload` shares the message's memory. */
export type BaseBackupMessage =
  | { kind: 'archive-data'; payload: Buffer }
  | { kind: 'progress'; doneBytes: number }
  | { kind: 'new-archive'; name: string; location: string }
  | { kind: 'manifest' }
  | { kind: 'unknown'; code: number };

export function decodeBaseBackupMessage(message: Buffer): BaseBackupMessage {
  switch (message[0]) {
    case CopyMessage.ArchiveData:
      return { kind: 'archive-data', payload: message.subarray(1) };
    case CopyMessage.Progress:
      // int64 bytes done.
      return { kind: 'progress', doneBytes: Number(message.readBigInt64BE(1)) };
    case CopyMessage.NewArchive: {
      // Two C strings: the archive's name and the tablespace's location (empty for the main one).
      const [name = '', location = ''] = readCStrings(message.subarray(1), 2);
      return { kind: 'new-archive', name, location };
    }
    case CopyMessage.Manifest:
      return { kind: 'manifest' };
    default:
      return { kind: 'unknown', code: message[0] ?? -1 };
  }
}

function readCStrings(data: Buffer, count: number): string[] {
  const strings: string[] = [];
  let offset = 0;
  for (let i = 0; i < count && offset < data.length; i += 1) {
    const end = data.indexOf(0, offset);
    const stop = end === -1 ? data.length : end;
    strings.push(data.toString('utf8', offset, stop));
    offset = stop + 1;
  }
  return strings;
}

export function pgTimeToDate(microseconds: bigint): Date {
  return new Date(Number((microseconds + PG_EPOCH_OFFSET_US) / 1000n));
}

export function dateToPgTime(date: Date): bigint {
  return BigInt(date.getTime()) * 1000n - PG_EPOCH_OFFSET_US;
}
