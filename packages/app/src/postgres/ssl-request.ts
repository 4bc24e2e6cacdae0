import net from 'node:net';
import { DataLayerError } from '../errors.ts';
import { describeServer, type ServerAddress } from './tls-mode.ts';

/** The SSLRequest message code (PostgreSQL protocol: 1234 << 16 | 5679). */
const SSL_REQUEST_CODE = 80877103;
/** The server's one-byte answer when it will speak TLS. */
const TLS_ACCEPTED = 0x53; // 'S'

/**
 * Asks the server whether it speaks TLS (the SSLRequest handshake), without authenticating.
 * `pg` has no "prefer" mode, so the data layer decides before connecting.
 */
export async function serverOffersTls(address: ServerAddress, timeoutMs = 10_000): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address.host, port: address.port });
    socket.setTimeout(timeoutMs);
    const request = Buffer.alloc(8);
    request.writeInt32BE(8, 0);
    request.writeInt32BE(SSL_REQUEST_CODE, 4);
    socket.once('connect', () => socket.write(request));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data[0] === TLS_ACCEPTED);
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(unreachable(address, Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })));
    });
    socket.once('error', (error) => reject(unreachable(address, error)));
  });
}

function unreachable(address: ServerAddress, error: unknown): DataLayerError {
  const code = (error as { code?: string }).code;
  return new DataLayerError(
    'WARDEN_E_DB_UNREACHABLE',
    `cannot reach PostgreSQL at ${address.host}:${address.port} (${code ?? 'error'})`,
    {
      hint: 'Check the host and port, and that the server is running and listening on that address.',
      details: { connection: describeServer(address), errno: code },
      cause: error,
    },
  );
}
