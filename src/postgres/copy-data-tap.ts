import type { EventEmitter } from 'node:events';
import { RAW_READS } from './recycling-socket.ts';

const COPY_DATA = 0x64; // 'd'
/** Type byte and int32 length (which counts itself but not the type byte). */
const HEADER_BYTES = 5;

type DataListener = (chunk: Buffer) => void;

/**
 * Takes the bulk of a COPY OUT stream off the socket before pg's protocol parser sees it:
 * CopyData messages whose payload starts with `subtype` (BASE_BACKUP's 'd' archive data) go
 * straight from the socket's chunks to `onBulk` (the payload after the subtype byte, in pieces
 * that may split a message anywhere); every other message is handed whole, in order, to the
 * socket's original 'data' listeners (pg), which handle results, progress, CopyDone, errors and
 * ReadyForQuery as usual.
 *
 * pg's parser copies each socket chunk into its own buffer when a message straddles two chunks
 * (32 KiB messages in 64 KiB reads nearly always do), then makes an object per message; for
 * gigabytes of archive data that was a copy and an allocation too many on the receiving thread.
 */
export class CopyDataTap {
  private readonly original: DataListener[];
  private readonly listener = (chunk: Buffer) => this.onData(chunk);
  private installed = true;
  /** The start of the message being read (type, length, maybe the subtype byte). */
  private readonly header = Buffer.alloc(HEADER_BYTES + 1);
  private headerFilled = 0;
  /** Payload bytes of the current bulk message not yet read. */
  private bulkLeft = 0;
  /** A message for pg being collected, and how many of its bytes are still to come. */
  private passing: Buffer[] = [];
  private passLeft = 0;

  constructor(
    private readonly socket: EventEmitter,
    private readonly subtype: number,
    private readonly onBulk: (payload: Buffer) => void,
  ) {
    this.original = socket.listeners('data') as DataListener[];
    socket.removeAllListeners('data');
    socket.on('data', this.listener);
    // It keeps nothing of a chunk past the event (copies what pg gets): a recycling socket may
    // hand it its read buffers themselves.
    (socket as EventEmitter & { [RAW_READS]?: boolean })[RAW_READS] = true;
  }

  /** Gives the socket back to pg (idempotent); call once the command ended. */
  uninstall(): void {
    if (!this.installed) return;
    this.installed = false;
    (this.socket as EventEmitter & { [RAW_READS]?: boolean })[RAW_READS] = false;
    this.socket.removeListener('data', this.listener);
    for (const listener of this.original) this.socket.on('data', listener);
  }

  private onData(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (!this.installed) {
        // pg finished the command while handling the previous message: the rest is its own
        // (a copy: pg may keep it, and the chunk may be a recycled read buffer).
        this.deliver(Buffer.from(chunk.subarray(offset)));
        return;
      }
      const available = chunk.length - offset;
      if (this.bulkLeft > 0) {
        const n = Math.min(this.bulkLeft, available);
        this.onBulk(chunk.subarray(offset, offset + n));
        this.bulkLeft -= n;
        offset += n;
      } else if (this.passLeft > 0) {
        const n = Math.min(this.passLeft, available);
        this.passing.push(Buffer.from(chunk.subarray(offset, offset + n)));
        this.passLeft -= n;
        offset += n;
        if (this.passLeft === 0) this.finishPassing();
      } else {
        offset += this.readHeader(chunk, offset);
      }
    }
  }

  /** Reads message-start bytes from `chunk` at `offset`; returns how many it took. */
  private readHeader(chunk: Buffer, offset: number): number {
    const wanted = this.headerWanted();
    const n = Math.min(wanted - this.headerFilled, chunk.length - offset);
    chunk.copy(this.header, this.headerFilled, offset, offset + n);
    this.headerFilled += n;
    if (this.headerFilled < this.headerWanted()) return n;
    const payload = this.header.readUInt32BE(1) - 4;
    const headerLength = this.headerFilled;
    this.headerFilled = 0;
    if (this.header[0] === COPY_DATA && headerLength > HEADER_BYTES && this.header[5] === this.subtype) {
      this.bulkLeft = payload - 1;
      return n;
    }
    this.passing = [Buffer.from(this.header.subarray(0, headerLength))];
    this.passLeft = payload - (headerLength - HEADER_BYTES);
    if (this.passLeft === 0) this.finishPassing();
    return n;
  }

  /** The header bytes needed to route the current message: the subtype too for CopyData. */
  private headerWanted(): number {
    if (this.headerFilled < HEADER_BYTES) return HEADER_BYTES;
    const isCopyData = this.header[0] === COPY_DATA && this.header.readUInt32BE(1) > 4;
    return isCopyData ? HEADER_BYTES + 1 : HEADER_BYTES;
  }

  private finishPassing(): void {
    const message = this.passing.length === 1 ? this.passing[0]! : Buffer.concat(this.passing);
    this.passing = [];
    this.deliver(message);
  }

  private deliver(bytes: Buffer): void {
    for (const listener of this.original) listener.call(this.socket, bytes);
  }
}
