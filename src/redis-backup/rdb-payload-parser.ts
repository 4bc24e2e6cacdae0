import { WardenError } from '../errors.ts';

/** The RDB magic: every snapshot starts with `REDIS` and a 4-digit version. */
const MAGIC = Buffer.from('REDIS');
const EOF_MARK_LENGTH = 40;
/** A header line (`$<length>` or `$EOF:<40 bytes>`) is short; a longer one is not Redis. */
const MAX_LINE = 64;

export interface ParsedChunk {
  /** RDB bytes in this chunk, in order. */
  data: Buffer[];
  /** The whole snapshot has arrived. */
  done: boolean;
}

/**
 * Splits what a master sends after SYNC into the RDB snapshot and nothing else, at any chunk
 * boundary: newline keepalives while it prepares the snapshot, then either `$<length>\r\n` and
 * exactly that many bytes, or (diskless) `$EOF:<40-byte mark>\r\n`, the bytes, and the mark again.
 * The length comes from the network: one above `maxBytes` is refused before any byte is taken.
 */
export class RdbPayloadParser {
  private state: 'preamble' | 'length' | 'eof-mark' | 'done' = 'preamble';
  private line = Buffer.alloc(0);
  private remaining = 0;
  private mark = Buffer.alloc(0);
  /** The tail kept back in the EOF form, which may be the start of the mark. */
  private held = Buffer.alloc(0);
  private total = 0;
  private magic = Buffer.alloc(0);
  declaredLength: number | undefined;

  constructor(
    private readonly maxBytes: number,
    private readonly peer: string,
  ) {}

  get form(): 'length' | 'eof-mark' | undefined {
    return this.state === 'preamble' ? undefined : this.declaredLength === undefined ? 'eof-mark' : 'length';
  }

  get bytes(): number {
    return this.total;
  }

  push(chunk: Buffer): ParsedChunk {
    const data: Buffer[] = [];
    let rest = chunk;
    while (rest.length > 0 && this.state !== 'done') {
      if (this.state === 'preamble') rest = this.preamble(rest);
      else if (this.state === 'length') {
        const take = rest.subarray(0, this.remaining);
        rest = rest.subarray(take.length);
        this.remaining -= take.length;
        this.emit(take, data);
        if (this.remaining === 0) this.state = 'done';
      } else {
        const combined = this.held.length ? Buffer.concat([this.held, rest]) : rest;
        rest = Buffer.alloc(0);
        const at = combined.indexOf(this.mark);
        if (at >= 0) {
          this.held = Buffer.alloc(0);
          this.emit(combined.subarray(0, at), data);
          this.state = 'done';
        } else {
          const keep = Math.min(combined.length, EOF_MARK_LENGTH - 1);
          this.emit(combined.subarray(0, combined.length - keep), data);
          this.held = Buffer.from(combined.subarray(combined.length - keep));
        }
      }
    }
    return { data, done: this.state === 'done' };
  }

  /** Called when the connection ended: fails unless the snapshot was complete. */
  end(): void {
    if (this.state === 'done') return;
    const expected =
      this.state === 'length'
        ? `${this.remaining} more of ${this.declaredLength} bytes`
        : this.state === 'eof-mark'
          ? 'the end mark'
          : 'the snapshot header';
    throw new WardenError(
      'WARDEN_E_REDIS_TRUNCATED',
      `Redis at ${this.peer} closed the connection early: ${expected} never came`,
      {
        details: {
          peer: this.peer,
          received: this.total,
          ...(this.declaredLength !== undefined ? { declared: this.declaredLength } : {}),
        },
      },
    );
  }

  private preamble(chunk: Buffer): Buffer {
    let index = 0;
    while (index < chunk.length) {
      const byte = chunk[index]!;
      index += 1;
      if (byte !== 0x0a) {
        this.line = Buffer.concat([this.line, chunk.subarray(index - 1, index)]);
        if (this.line.length > MAX_LINE)
          throw this.protocol(`sent a header line longer than ${MAX_LINE} bytes`);
        continue;
      }
      const text = (this.line.at(-1) === 0x0d ? this.line.subarray(0, -1) : this.line).toString('latin1');
      this.line = Buffer.alloc(0);
      // An empty line is the master's keepalive while it writes the snapshot.
      if (text === '') continue;
      if (text.startsWith('-')) {
        throw new WardenError(
          'WARDEN_E_REDIS_ERROR',
          `Redis at ${this.peer} refused SYNC: ${text.slice(1, 200)}`,
          {
            details: { peer: this.peer, reply: text.slice(1).split(' ', 1)[0] },
          },
        );
      }
      if (text.startsWith('+')) continue; // +FULLRESYNC <replid> <offset> (PSYNC)
      this.header(text);
      return chunk.subarray(index);
    }
    return Buffer.alloc(0);
  }

  private header(text: string): void {
    if (text.startsWith('$EOF:')) {
      const mark = text.slice(5);
      if (mark.length !== EOF_MARK_LENGTH)
        throw this.protocol(`sent an end mark of ${mark.length} bytes, not ${EOF_MARK_LENGTH}`);
      this.mark = Buffer.from(mark, 'latin1');
      this.state = 'eof-mark';
      return;
    }
    const match = /^\$(\d{1,18})$/.exec(text);
    if (!match)
      throw this.protocol(
        `sent ${JSON.stringify(text.slice(0, MAX_LINE))} where the snapshot header belongs`,
      );
    const length = Number(match[1]);
    if (length > this.maxBytes) {
      throw new WardenError(
        'WARDEN_E_RDB_TOO_LARGE',
        `Redis at ${this.peer} announced a ${length}-byte snapshot, above the limit of ${this.maxBytes}`,
        {
          hint: 'Raise --max-rdb-size (redis.maxRdbSize) if the data really is this large.',
          details: { peer: this.peer, declared: length, limit: this.maxBytes },
        },
      );
    }
    if (length < MAGIC.length + 4)
      throw this.protocol(`announced a ${length}-byte snapshot, too short to be one`);
    this.declaredLength = length;
    this.remaining = length;
    this.state = 'length';
  }

  private emit(bytes: Buffer, data: Buffer[]): void {
    if (bytes.length === 0) return;
    this.total += bytes.length;
    if (this.total > this.maxBytes) {
      throw new WardenError(
        'WARDEN_E_RDB_TOO_LARGE',
        `Redis at ${this.peer} sent more than ${this.maxBytes} snapshot bytes`,
        {
          hint: 'Raise --max-rdb-size (redis.maxRdbSize) if the data really is this large.',
          details: { peer: this.peer, limit: this.maxBytes },
        },
      );
    }
    if (this.magic.length < MAGIC.length) {
      this.magic = Buffer.concat([this.magic, bytes.subarray(0, MAGIC.length - this.magic.length)]);
      if (!MAGIC.subarray(0, this.magic.length).equals(this.magic))
        throw this.protocol('sent a snapshot that does not start with the RDB magic "REDIS"');
    }
    data.push(bytes);
  }

  private protocol(what: string): WardenError {
    return new WardenError('WARDEN_E_PROTOCOL', `Redis at ${this.peer} ${what}`, {
      details: { peer: this.peer },
    });
  }
}
