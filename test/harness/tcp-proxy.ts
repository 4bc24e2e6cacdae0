import net from 'node:net';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

export interface TcpProxy {
  readonly host: string;
  readonly port: number;
  /** SSLRequests answered "N" so far (strip-tls mode). */
  readonly stripped: number;
  /** Connections forwarded to the server so far. */
  readonly forwarded: number;
  /**
   * Points the proxy at another server and drops the connections in flight, as a service address
   * (a VIP, a Kubernetes Service) moving to a promoted primary does.
   */
  retarget(upstream: { host: string; port: number }): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of PostgreSQL at `upstream`, listening on `host` (an address of this
 * machine). `transparent` passes bytes through, TLS included. `strip-tls` is the downgrade attack:
 * it answers "N" to SSLRequest (and GSSENCRequest) itself, so a client that accepts that goes on
 * in plaintext through the proxy to the real server.
 */
export async function startTcpProxy(options: {
  host: string;
  upstream: { host: string; port: number };
  mode: 'transparent' | 'strip-tls';
  /**
   * A fault: after this many bytes from the server to the client, both connections are cut, as a
   * network failure or a dying server mid-transfer would (counted per connection).
   */
  cutAfterBytes?: number;
}): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let stripped = 0;
  let forwarded = 0;
  let target = options.upstream;
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    let upstream: net.Socket | undefined;
    const connectUpstream = (first: Buffer) => {
      forwarded += 1;
      upstream = net.connect(target);
      sockets.add(upstream);
      upstream.on('close', () => client.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream?.destroy());
      if (first.length) upstream.write(first);
      client.pipe(upstream);
      const limit = options.cutAfterBytes;
      if (limit === undefined) {
        upstream.pipe(client);
        return;
      }
      let passed = 0;
      upstream.on('data', (chunk: Buffer) => {
        if (passed >= limit) return;
        const room = limit - passed;
        passed += chunk.length;
        if (room > chunk.length) {
          client.write(chunk);
          return;
        }
        client.end(chunk.subarray(0, room), () => {
          client.destroy();
          upstream?.destroy();
        });
      });
    };
    if (options.mode === 'transparent') {
      connectUpstream(Buffer.alloc(0));
      return;
    }
    let pending = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 8) {
        const length = pending.readInt32BE(0);
        const code = pending.readInt32BE(4);
        if (length === 8 && (code === SSL_REQUEST || code === GSSENC_REQUEST)) {
          if (code === SSL_REQUEST) stripped += 1;
          pending = pending.subarray(8);
          client.write('N');
          continue;
        }
        client.off('data', onData);
        connectUpstream(pending);
        return;
      }
    };
    client.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, options.host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: options.host,
    port,
    get stripped() {
      return stripped;
    },
    get forwarded() {
      return forwarded;
    },
    retarget(next) {
      target = next;
      for (const socket of sockets) socket.destroy();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
