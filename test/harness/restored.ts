import path from 'node:path';
import type pg from 'pg';
import { checkLedger, type LedgerCheck } from '../../src/embedded/ledger.ts';
import type { RepositoryKeys } from '../../src/pipeline/encryption/repository-keys.ts';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import type { ObjectStore } from '../../src/repository/object-store.ts';
import type { RestoreTarget } from '../../src/restore/restore-planner.ts';
import { restore, type RestoreReport } from '../../src/restore/restore.ts';
import { withClient, type TestCluster } from './postgres.ts';

/**
 * Restores `store` to `target` into a new directory under the cluster's work dir, starts it,
 * runs `fn` connected to it with the source's superuser credentials, and stops the restored
 * instance again (the directory stays, for checks on its files).
 */
export async function withRestored<T>(
  cluster: TestCluster,
  store: ObjectStore,
  dirName: string,
  target: RestoreTarget,
  fn: (client: pg.Client, report: RestoreReport) => Promise<T>,
  keys?: RepositoryKeys,
): Promise<T> {
  const targetDir = path.join(cluster.workDir, dirName);
  const report = await restore({ store, target, targetDir, start: true, ...(keys ? { keys } : {}) });
  const instance = new LocalInstance({
    binaries: cluster.instance.binaries,
    dataDir: targetDir,
    port: report.port!,
  });
  try {
    return await withClient(cluster.url().replace(`:${cluster.port}/`, `:${report.port}/`), (client) =>
      fn(client, report),
    );
  } finally {
    await instance.stop({ mode: 'immediate' });
  }
}

/** Restores like `withRestored` and reads the ledger (transfer ids, balanced, consistent). */
export async function restoredLedger(
  cluster: TestCluster,
  store: ObjectStore,
  dirName: string,
  target: RestoreTarget = { kind: 'latest' },
  keys?: RepositoryKeys,
): Promise<LedgerCheck> {
  return withRestored(cluster, store, dirName, target, (client) => checkLedger(client), keys);
}
