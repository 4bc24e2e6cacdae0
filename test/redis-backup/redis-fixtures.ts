import { RespConnection } from '../../src/redis-backup/resp-connection.ts';
import { endpointOf, type RedisEndpoint } from '../../src/redis-backup/redis-endpoint.ts';
import { keySlot } from '../../src/redis-backup/key-slot.ts';

export function loopback(port: number): RedisEndpoint {
  return endpointOf({ host: '127.0.0.1', port, tls: false });
}

export interface KeyState {
  type: string;
  /** The value in a canonical form (sets sorted, hashes as sorted field/value pairs). */
  value: string;
  pttl: number;
}

const READ: Record<string, (key: Buffer) => Array<string | Buffer>> = {
  string: (key) => ['GET', key],
  hash: (key) => ['HGETALL', key],
  list: (key) => ['LRANGE', key, '0', '-1'],
  set: (key) => ['SMEMBERS', key],
  zset: (key) => ['ZRANGE', key, '0', '-1', 'WITHSCORES'],
};

function pairsOrSorted(type: string, items: string[]): string[] {
  if (type === 'set') return [...items].sort();
  const pairs: string[] = [];
  for (let i = 0; i < items.length; i += 2) pairs.push(`${items[i]}=${items[i + 1]}`);
  return pairs.sort();
}

/** Every key of a node (database `db`) with its type, value and PTTL. */
export async function snapshotKeys(port: number, db = 0): Promise<Map<string, KeyState>> {
  const connection = await RespConnection.open(loopback(port));
  try {
    await connection.command('SELECT', db);
    const result = new Map<string, KeyState>();
    let cursor = '0';
    do {
      const [next, keys] = (await connection.command('SCAN', cursor, 'COUNT', 1000)) as [Buffer, Buffer[]];
      cursor = next.toString();
      for (const key of keys) {
        const [type, pttl] = await connection.pipeline([
          ['TYPE', key],
          ['PTTL', key],
        ]);
        const read = READ[String(type)];
        if (!read) throw new Error(`no reader for type ${String(type)}`);
        const value = await connection.command(...read(key));
        const items = Array.isArray(value) ? value.map(String) : [String(value)];
        // A set's or hash's order is the server's business (it changes on reload); its content is not.
        const canonical =
          String(type) === 'set' || String(type) === 'hash' ? pairsOrSorted(String(type), items) : items;
        result.set(key.toString('utf8'), {
          type: String(type),
          value: JSON.stringify(canonical),
          pttl: pttl as number,
        });
      }
    } while (cursor !== '0');
    return result;
  } finally {
    connection.close();
  }
}

/**
 * Writes `count` keys of every type, a third with a TTL of an hour, into a standalone node (or,
 * with `route`, into the cluster master that owns each key's slot).
 */
export async function seedKeys(
  ports: number[],
  count: number,
  route?: (slot: number) => number,
): Promise<void> {
  const connections = new Map<number, RespConnection>();
  const at = async (port: number) => {
    let connection = connections.get(port);
    if (!connection) connections.set(port, (connection = await RespConnection.open(loopback(port))));
    return connection;
  };
  try {
    const batches = new Map<number, Array<Array<string | number>>>();
    for (let i = 0; i < count; i += 1) {
      const kind = i % 5;
      const key = `k:${kind}:${i}`;
      const port = route ? route(keySlot(Buffer.from(key))) : ports[0]!;
      const commands = batches.get(port) ?? [];
      if (kind === 0) commands.push(['SET', key, `value-${i}-${'x'.repeat(i % 50)}`]);
      if (kind === 1) commands.push(['HSET', key, 'a', i, 'b', `b${i}`]);
      if (kind === 2) commands.push(['RPUSH', key, 'one', 'two', String(i)]);
      if (kind === 3) commands.push(['SADD', key, 'x', 'y', String(i)]);
      if (kind === 4) commands.push(['ZADD', key, i, 'm1', i + 1, 'm2']);
      if (i % 3 === 0) commands.push(['PEXPIRE', key, 3_600_000]);
      batches.set(port, commands);
    }
    for (const [port, commands] of batches) {
      const connection = await at(port);
      for (const reply of await connection.pipeline(commands))
        if (reply instanceof Error || (reply as { kind?: string })?.kind)
          throw new Error(`seed failed: ${String(reply)}`);
    }
  } finally {
    for (const connection of connections.values()) connection.close();
  }
}
