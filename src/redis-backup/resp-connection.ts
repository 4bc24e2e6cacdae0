import net from 'node:net';
import tls from 'node:tls';
import { WardenError } from '../errors.ts';
import { ByteReader } from './byte-reader.ts';
import type { RedisEndpoint } from './redis-endpoint.ts';
import { encodeCommand, readReply, RespError, type RespReply } from './resp-reply.ts';

export interface ConnectOptions {
  /** Connecting (TCP and TLS) may take this long. */
  connectTimeoutMs?: number;
  /** A connection silent for this long is broken (the master sends keepalives while it prepares an RDB). */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * One plain RESP2 connection: what Warden needs of Redis beyond a normal client — the replication
 * handshake (SYNC) and binary DUMP/RESTORE — with no reconnects and no hidden retries.
 */
export class RespConnection {
  private constructor(
    private readonly socket: net.Socket,
    readonly reader: ByteReader,
    readonly endpoint: RedisEndpoint,
  ) {}

  static async open(endpoint: RedisEndpoint, options: ConnectOptions = {}): Promise<RespConnection> {
    const socket = endpoint.tls
      ? tls.connect({
          host: endpoint.host,
          port: endpoint.port,
          servername: net.isIP(endpoint.host) ? undefined : endpoint.host,
        })
      : net.connect({ host: endpoint.host, port: endpoint.port });
    const onAbort = () => socket.destroy(new WardenError('WARDEN_E_ABORTED', 'cancelled'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('close', () => options.signal?.removeEventListener('abort', onAbort));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no connection within ${options.connectTimeoutMs ?? 10_000} ms`)),
          options.connectTimeoutMs ?? 10_000,
        );
        socket.once(endpoint.tls ? 'secureConnect' : 'connect', () => {
          clearTimeout(timer);
          resolve();
        });
        socket.once('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
      });
    } catch (cause) {
      socket.destroy();
      if (cause instanceof WardenError) throw cause;
      throw new WardenError(
        'WARDEN_E_REDIS_UNREACHABLE',
        `cannot connect to Redis at ${endpoint.display}: ${(cause as Error).message}`,
        {
          details: { peer: endpoint.display },
          cause,
        },
      );
    }
    socket.setNoDelay(true);
    socket.setTimeout(options.idleTimeoutMs ?? 60_000, () =>
      socket.destroy(new Error(`no data for ${options.idleTimeoutMs ?? 60_000} ms`)),
    );
    const connection = new RespConnection(socket, new ByteReader(socket, endpoint.display), endpoint);
    if (endpoint.password !== undefined) {
      const args = endpoint.username
        ? ['AUTH', endpoint.username, endpoint.password]
        : ['AUTH', endpoint.password];
      const reply = await connection.raw(args);
      if (reply instanceof RespError) {
        connection.close();
        throw new WardenError(
          'WARDEN_E_REDIS_AUTH_FAILED',
          `Redis at ${endpoint.display} refused the credentials (${reply.kind})`,
          {
            details: { peer: endpoint.display, reply: reply.kind },
          },
        );
      }
    }
    return connection;
  }

  /** Sends one command and returns its reply, error replies included. */
  async raw(args: ReadonlyArray<string | Buffer | number>): Promise<RespReply> {
    this.socket.write(encodeCommand(args));
    return readReply(this.reader, this.endpoint.display);
  }

  /** Sends one command; an error reply becomes WARDEN_E_REDIS_ERROR naming the command. */
  async command(...args: Array<string | Buffer | number>): Promise<RespReply> {
    const reply = await this.raw(args);
    if (reply instanceof RespError) throw redisError(this.endpoint, String(args[0]), reply);
    return reply;
  }

  /** Sends every command at once, then reads the replies in order (error replies included). */
  async pipeline(commands: ReadonlyArray<ReadonlyArray<string | Buffer | number>>): Promise<RespReply[]> {
    if (commands.length === 0) return [];
    this.socket.write(Buffer.concat(commands.map((args) => encodeCommand(args))));
    const replies: RespReply[] = [];
    for (let i = 0; i < commands.length; i += 1)
      replies.push(await readReply(this.reader, this.endpoint.display));
    return replies;
  }

  /** Writes bytes as they are (the replication handshake's inline commands). */
  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  close(): void {
    this.socket.destroy();
  }
}

export function redisError(endpoint: RedisEndpoint, command: string, reply: RespError): WardenError {
  if (reply.kind === 'NOAUTH' || reply.kind === 'WRONGPASS') {
    return new WardenError(
      'WARDEN_E_REDIS_AUTH_FAILED',
      `Redis at ${endpoint.display} needs credentials Warden was not given (${reply.kind})`,
      {
        hint: 'Give the password in WARDEN_REDIS_PASSWORD or --redis-password-file (and the ACL user in the URL).',
        details: { peer: endpoint.display, reply: reply.kind },
      },
    );
  }
  return new WardenError(
    'WARDEN_E_REDIS_ERROR',
    `Redis at ${endpoint.display} answered ${command} with: ${reply.message.slice(0, 200)}`,
    {
      details: { peer: endpoint.display, command, reply: reply.kind },
    },
  );
}

/** A reply as text (status and bulk strings); anything else is a protocol violation. */
export function replyText(reply: RespReply, peer: string, what: string): string {
  if (!Buffer.isBuffer(reply)) {
    throw new WardenError(
      'WARDEN_E_PROTOCOL',
      `Redis at ${peer} answered ${what} with something that is not a string`,
      {
        details: { peer },
      },
    );
  }
  return reply.toString('utf8');
}
