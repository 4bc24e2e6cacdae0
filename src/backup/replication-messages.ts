import type { Lsn } from '../wal/lsn.ts';

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
 * the client clock and whether the server should answer at once. Warden applies nothing, so it
 * reports applied as invalid (0).
 */
export function encodeStatusUpdate(written: Lsn, flushed: Lsn, replyNow: boolean, now = new Date()): Buffer {
  const message = Buffer.alloc(34);
  message[0] = 0x72; // 'r'
  message.writeBigUInt64BE(written, 1);
  message.writeBigUInt64BE(flushed, 9);
  message.writeBigUInt64BE(0n, 17);
  message.writeBigInt64BE(dateToPgTime(now), 25);
  message[33] = replyNow ? 1 : 0;
  return message;
}

export function pgTimeToDate(microseconds: bigint): Date {
  return new Date(Number((microseconds + PG_EPOCH_OFFSET_US) / 1000n));
}

export function dateToPgTime(date: Date): bigint {
  return BigInt(date.getTime()) * 1000n - PG_EPOCH_OFFSET_US;
}
