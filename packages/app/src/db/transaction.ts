import { DataLayerError } from '../errors.ts';
import type { DbConnection } from './driver.ts';
import { isConnectionFailure, statementError } from './failure.ts';
import type { Queryable } from './types.ts';

/**
 * Runs `fn` between BEGIN and COMMIT on `connection` (ROLLBACK when it throws). The `tx` handed
 * to `fn` refuses statements once the transaction finished. A broken connection's error is
 * raised as it is (the caller turns it into a failover); when COMMIT itself broke, the error
 * carries `commitOutcome: 'unknown'`. A failed ROLLBACK poisons the lease.
 */
export async function inTransaction<T>(
  connection: DbConnection,
  lease: { poison(): void },
  fn: (tx: Queryable) => Promise<T>,
): Promise<T> {
  let open = true;
  const tx: Queryable = {
    query: async <R>(sql: string, params?: readonly unknown[]) => {
      if (!open) throw new DataLayerError('WARDEN_E_USAGE', 'transaction already finished');
      try {
        return await connection.query<R>(sql, params);
      } catch (error) {
        throw isConnectionFailure(error, connection) ? error : statementError(error);
      }
    },
  };
  await connection.query('BEGIN');
  let result: T;
  try {
    result = await fn(tx);
  } catch (error) {
    open = false;
    // A session whose ROLLBACK failed is in an unknown state: it must not go back to the pool.
    await connection.query('ROLLBACK').catch(() => lease.poison());
    throw error;
  }
  open = false;
  try {
    await connection.query('COMMIT');
  } catch (error) {
    if (isConnectionFailure(error, connection)) Object.assign(error as object, { commitOutcome: 'unknown' });
    throw error;
  }
  return result;
}
