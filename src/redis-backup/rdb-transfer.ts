import { RdbPayloadParser } from './rdb-payload-parser.ts';
import type { RespConnection } from './resp-connection.ts';
import { RespError } from './resp-reply.ts';

export interface RdbTransfer {
  bytes: number;
  /** How the master framed it: a length header, or (diskless) an end mark. */
  form: 'length' | 'eof-mark';
}

/** The default bound on one snapshot (the length header is the server's word): 64 GiB. */
export const DEFAULT_MAX_RDB_BYTES = 64 * 1024 ** 3;

/**
 * Asks a master for an RDB snapshot as a replica would, the way `redis-cli --rdb` does, and
 * hands its bytes to `write` in order. `REPLCONF rdb-only 1` (Redis 7+) tells the master this
 * replica wants the snapshot alone; `capa eof` (with `diskless`) lets a master with
 * `repl-diskless-sync` stream it without writing it to its own disk.
 */
export async function receiveRdb(
  connection: RespConnection,
  write: (chunk: Buffer) => Promise<void>,
  options: { maxBytes?: number; diskless?: boolean } = {},
): Promise<RdbTransfer> {
  // Older servers answer "-ERR unrecognized REPLCONF option": harmless, they send the snapshot anyway.
  const rdbOnly = await connection.raw(['REPLCONF', 'rdb-only', '1']);
  if (rdbOnly instanceof RespError && rdbOnly.kind === 'NOAUTH')
    await connection.command('REPLCONF', 'rdb-only', '1');
  if (options.diskless) await connection.raw(['REPLCONF', 'capa', 'eof']);
  connection.write(Buffer.from('SYNC\r\n'));
  const parser = new RdbPayloadParser(options.maxBytes ?? DEFAULT_MAX_RDB_BYTES, connection.endpoint.display);
  for (;;) {
    const chunk = await connection.reader.some(1024 * 1024);
    if (chunk.length === 0) parser.end();
    const { data, done } = parser.push(chunk);
    for (const piece of data) await write(piece);
    if (done) return { bytes: parser.bytes, form: parser.form! };
  }
}
