import { WardenError } from '../errors.ts';
import type { ByteReader } from './byte-reader.ts';

/** A RESP2 reply: simple/bulk strings as Buffers, integers, arrays, null, or a server error. */
export type RespReply = Buffer | number | null | RespError | RespReply[];

/** An error reply (`-ERR ...`): a value, not an exception, so a pipeline sees each one. */
export class RespError {
  constructor(readonly message: string) {}
  /** The first word, e.g. `NOAUTH`, `LOADING`, `BUSYKEY`. */
  get kind(): string {
    return this.message.split(' ', 1)[0] ?? '';
  }
}

/** Bounds on what one reply may claim, so a hostile server cannot make Warden allocate at will. */
export const REPLY_LIMITS = {
  /** A status or error line. */
  lineBytes: 64 * 1024,
  /** One bulk string (DUMP payloads are values; Redis caps a string at 512 MiB). */
  bulkBytes: 512 * 1024 * 1024,
  /** Elements of one array (a SCAN page, CLUSTER SLOTS). */
  arrayLength: 1_000_000,
  depth: 8,
};

/** Reads one RESP2 reply. */
export async function readReply(reader: ByteReader, peer: string, depth = 0): Promise<RespReply> {
  const line = await reader.line(REPLY_LIMITS.lineBytes);
  if (line === undefined) {
    throw new WardenError(
      'WARDEN_E_REDIS_TRUNCATED',
      `Redis at ${peer} closed the connection before replying`,
      {
        details: { peer },
      },
    );
  }
  const type = String.fromCharCode(line[0] ?? 0);
  const text = line.subarray(1).toString('latin1');
  switch (type) {
    case '+':
      return line.subarray(1);
    case '-':
      return new RespError(line.subarray(1).toString('utf8'));
    case ':':
      return parseCount(text, peer, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    case '$': {
      const length = parseCount(text, peer, -1, REPLY_LIMITS.bulkBytes);
      if (length === -1) return null;
      const body = await reader.exactly(length + 2);
      return body.subarray(0, length);
    }
    case '*': {
      if (depth >= REPLY_LIMITS.depth) throw protocol(peer, 'nests arrays too deeply');
      const count = parseCount(text, peer, -1, REPLY_LIMITS.arrayLength);
      if (count === -1) return null;
      const items: RespReply[] = [];
      for (let i = 0; i < count; i += 1) items.push(await readReply(reader, peer, depth + 1));
      return items;
    }
    default:
      throw protocol(peer, `sent a reply of unknown type ${JSON.stringify(type)}`);
  }
}

/** A decimal integer within [min, max]; anything else is a protocol violation. */
export function parseCount(text: string, peer: string, min: number, max: number): number {
  if (!/^-?\d{1,16}$/.test(text))
    throw protocol(peer, `sent ${JSON.stringify(text.slice(0, 40))} where a number belongs`);
  const value = Number(text);
  if (value < min || value > max) throw protocol(peer, `sent ${value}, outside ${min}..${max}`);
  return value;
}

export function protocol(peer: string, what: string): WardenError {
  return new WardenError('WARDEN_E_PROTOCOL', `Redis at ${peer} ${what}`, { details: { peer } });
}

/** Encodes a command as a RESP array of bulk strings. */
export function encodeCommand(args: ReadonlyArray<string | Buffer | number>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg));
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}
