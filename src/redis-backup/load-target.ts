import { WardenError } from '../errors.ts';
import { keySlot } from './key-slot.ts';
import { endpointOf, type RedisEndpoint } from './redis-endpoint.ts';
import { keyspace, readInfo } from './redis-info.ts';
import { RespConnection } from './resp-connection.ts';
import { parseClusterSlots, SLOT_COUNT } from './slot-map.ts';

/** A running Redis that restored keys go into: a standalone server, or every master of a cluster. */
export interface LoadTarget {
  readonly cluster: boolean;
  readonly connections: readonly RespConnection[];
  /** The connection that owns `key` (its slot's master in a cluster). */
  route(key: Buffer): RespConnection;
  close(): void;
}

/**
 * Connects to the target and refuses one that holds any key (WARDEN_E_REDIS_TARGET_NOT_EMPTY
 * naming the node and its key counts): restoring must never mix with, or overwrite, live data.
 */
export async function openLoadTarget(seed: RedisEndpoint): Promise<LoadTarget> {
  const first = await RespConnection.open(seed);
  const connections: RespConnection[] = [first];
  try {
    const cluster = (await readInfo(first, 'cluster')).get('cluster_enabled') === '1';
    const owner = new Array<RespConnection>(SLOT_COUNT);
    if (cluster) {
      for (const master of parseClusterSlots(await first.command('CLUSTER', 'SLOTS'), seed.display)) {
        const connection = await RespConnection.open(
          endpointOf({ ...seed, host: master.host, port: master.port }),
        );
        connections.push(connection);
        for (const [start, end] of master.slots) owner.fill(connection, start, end + 1);
      }
    }
    const masters = cluster ? connections.slice(1) : connections;
    for (const connection of masters) {
      const counts = await keyspace(connection);
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      if (total > 0) {
        throw new WardenError(
          'WARDEN_E_REDIS_TARGET_NOT_EMPTY',
          `${connection.endpoint.display} holds ${total} key(s): Warden loads only into an empty Redis`,
          {
            hint: 'Restore into a new, empty server or cluster (or FLUSHALL it first if its data is really disposable).',
            details: {
              node: connection.endpoint.display,
              keys: Object.fromEntries([...counts].map(([db, n]) => [`db${db}`, n])),
            },
          },
        );
      }
    }
    return {
      cluster,
      connections: masters,
      route: (key) => (cluster ? owner[keySlot(key)]! : first),
      close: () => connections.forEach((c) => c.close()),
    };
  } catch (error) {
    connections.forEach((c) => c.close());
    throw error;
  }
}
