import net from 'node:net';

/** Bytes one socket read may return. */
const READ_BYTES = 256 * 1024;

/**
 * Set on a recycling socket while its only 'data' listener copies whatever it keeps before it
 * returns (a CopyDataTap): reads are then emitted as they are, views of the recycled buffers.
 */
export const RAW_READS = Symbol('warden.rawReads');

/**
 * A TCP socket that reads into two recycled buffers in turn instead of a fresh buffer per read
 * (Node's `onread`). A replication connection receives gigabytes: fresh 64 KiB read buffers were
 * ~25,000 allocations per 1.5 GB, and the external memory they churned made V8 run a full
 * mark-compact every few dozen milliseconds, each one a pause in which the server's sends
 * stalled.
 *
 * Reads are emitted as 'data' events, as copies unless `socket[RAW_READS]` is set: pg's parser
 * may keep a chunk (a message cut off at its end) and even adopt it as its own working buffer,
 * which a later read would overwrite. Only a listener that keeps nothing may see the buffers
 * themselves. With TLS, pg reads through its TLS socket and these buffers are not used.
 */
export function recyclingSocket(): net.Socket {
  const buffers = [Buffer.allocUnsafe(READ_BYTES), Buffer.allocUnsafe(READ_BYTES)];
  let next = 0;
  const socket = new net.Socket({
    onread: {
      buffer: () => buffers[next++ & 1]!,
      callback: (bytes: number, buffer: Uint8Array) => {
        const view = Buffer.from(buffer.buffer, buffer.byteOffset, bytes);
        const raw = (socket as net.Socket & { [RAW_READS]?: boolean })[RAW_READS] === true;
        socket.emit('data', raw ? view : Buffer.from(view));
        return true;
      },
    },
  } as net.SocketConstructorOpts) as net.Socket & { [RAW_READS]?: boolean };
  return socket;
}
