/**
 * `@warden/app/db`: PostgreSQL for application code. Pools per workload role with HikariCP
 * semantics, reads routed to replicas within a lag bound with read-your-writes, failover to a
 * promoted replica (hosts optionally followed from Patroni), and a connection budget check. See
 * docs/data-layer-db.md.
 */
import { Database } from './database.ts';
import type { DatabaseOptions } from './config.ts';

export { Database } from './database.ts';
export type { DatabaseStats, QueryOptions, TransactionOptions } from './database.ts';
export { POOL_DEFAULTS, POOL_ROLES } from './config.ts';
export {
  hostsOf,
  optionsFromPatroni,
  parsePatroniCluster,
  readPatroniTopology,
  readPatroniView,
} from './patroni-topology.ts';
export type { PatroniMember, PatroniSource, PatroniTopology, PatroniView } from './patroni-topology.ts';
export type { TopologyStats } from './topology-refresher.ts';
export type { DatabaseOptions, Environment, PatroniRouting } from './config.ts';
export { credentialsFromFile } from './credentials.ts';
export type { Credentials, CredentialsProvider } from './credentials.ts';
export type { LeakStackMode, PoolSettings, PoolStats } from './pool.ts';
export type { ConnectionBudget, ServerBudget } from './budget.ts';
export type { HostInput, PoolRole, QueryResult, Queryable, RoutingStats } from './types.ts';

/**
 * Builds the data layer's PostgreSQL access. No I/O happens here: `start()` (or the first query)
 * connects, pre-fills the pools and checks the connection budget; `close()` ends everything.
 *
 * @example
 * ```ts
 * import { createDatabase } from '@warden/app/db';
 *
 * const db = createDatabase({
 *   primary: 'postgres://app:secret@db1:5432/app',
 *   replicas: ['postgres://app:secret@db2:5432/app'],
 *   environment: 'prod',
 *   appInstances: 4,
 *   maxReplicaLagMs: 1000,
 *   logger,
 * });
 * await db.start();
 * await db.query('UPDATE account SET name = $1 WHERE id = $2', ['Ada', 7], { session: req.sessionId });
 * // Goes to a replica only once it has replayed the update above:
 * const { rows } = await db.query('SELECT name FROM account WHERE id = $1', [7], { role: 'read', session: req.sessionId });
 * await db.transaction(async (tx) => {
 *   await tx.query('INSERT INTO audit(note) VALUES ($1)', ['renamed']);
 * });
 * console.log(db.stats().pools.write.active);
 * await db.close();
 * ```
 */
export function createDatabase(options: DatabaseOptions): Database {
  return new Database(options);
}
