import type { Logger } from '../logger.ts';
import type { PoolSettings } from './pool.ts';
import type { PoolRole, Queryable } from './types.ts';

/** One server's side of the connection budget. */
export interface ServerBudget {
  readonly host: string;
  readonly role: 'primary' | 'replica';
  /** Connections all app instances may open to this server at most. */
  readonly demand: number;
  /** `max_connections`, or undefined when the server could not be asked. */
  readonly maxConnections: number | undefined;
  /** `superuser_reserved_connections` plus `reserved_connections` (PostgreSQL 16+). */
  readonly reserved: number | undefined;
  /** `maxConnections - reserved`. */
  readonly available: number | undefined;
  readonly ok: boolean | undefined;
  readonly error?: string;
}

export interface ConnectionBudget {
  readonly appInstances: number;
  /** Maximum connections one app instance opens per role (read is per server). */
  readonly perInstance: Readonly<Record<PoolRole, number>> & { readonly monitor: number };
  readonly servers: readonly ServerBudget[];
  /** False when any reachable server would be oversubscribed. */
  readonly ok: boolean;
}

const LIMITS_SQL =
  "SELECT current_setting('max_connections')::int AS max_connections, " +
  "current_setting('superuser_reserved_connections')::int AS superuser_reserved, " +
  "coalesce(current_setting('reserved_connections', true), '0')::int AS reserved";

/**
 * Demand per server and app instance: the primary carries the write and batch pools, every
 * server a read pool (reads fall back to the primary, and any replica may become primary) and
 * one health-check session.
 */
export function demandPerInstance(
  pools: Readonly<Record<PoolRole, PoolSettings>>,
  role: 'primary' | 'replica',
): number {
  const onEvery = pools.read.maxSize + 1;
  return role === 'primary' ? onEvery + pools.write.maxSize + pools.batch.maxSize : onEvery;
}

/**
 * Compares what the pools may open, times the number of app instances, with what each server
 * allows (`max_connections - superuser_reserved_connections`), and warns when it does not fit.
 */
export async function checkBudget(input: {
  servers: ReadonlyArray<{ host: string; role: 'primary' | 'replica'; runner: Queryable | undefined }>;
  pools: Readonly<Record<PoolRole, PoolSettings>>;
  appInstances: number;
  logger: Logger;
}): Promise<ConnectionBudget> {
  const { pools, appInstances, logger } = input;
  const servers = await Promise.all(
    input.servers.map(async ({ host, role, runner }): Promise<ServerBudget> => {
      const demand = demandPerInstance(pools, role) * appInstances;
      try {
        if (!runner) throw new Error('server not reachable');
        const { rows } = await runner.query<{
          max_connections: number;
          superuser_reserved: number;
          reserved: number;
        }>(LIMITS_SQL);
        const row = rows[0];
        if (!row) throw new Error('no settings returned');
        const reserved = row.superuser_reserved + row.reserved;
        const available = row.max_connections - reserved;
        return {
          host,
          role,
          demand,
          maxConnections: row.max_connections,
          reserved,
          available,
          ok: demand <= available,
        };
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        return {
          host,
          role,
          demand,
          maxConnections: undefined,
          reserved: undefined,
          available: undefined,
          ok: undefined,
          error: message,
        };
      }
    }),
  );
  const budget: ConnectionBudget = {
    appInstances,
    perInstance: {
      read: pools.read.maxSize,
      write: pools.write.maxSize,
      batch: pools.batch.maxSize,
      monitor: 1,
    },
    servers,
    ok: servers.every((s) => s.ok !== false),
  };
  for (const server of servers) {
    if (server.ok === false) {
      logger.warn(
        {
          host: server.host,
          role: server.role,
          demand: server.demand,
          appInstances,
          maxConnections: server.maxConnections,
          reserved: server.reserved,
          available: server.available,
        },
        `connection budget exceeded on ${server.host}: pools may open ${server.demand} connections ` +
          `(${appInstances} instance(s)) but the server allows ${server.available} ` +
          `(max_connections ${server.maxConnections} - reserved ${server.reserved})`,
      );
    }
  }
  return budget;
}
