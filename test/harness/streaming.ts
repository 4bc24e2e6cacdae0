import path from 'node:path';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { connectionFromUrl, type ConnectionConfig } from '../../src/postgres/connection-config.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import type { ObjectStore } from '../../src/repository/object-store.ts';
import { parseLsn, type Lsn } from '../../src/wal/lsn.ts';
import type { TestCluster } from './postgres.ts';

export interface StreamingRepository<S extends ObjectStore = ObjectStore> {
  readonly store: S;
  readonly connection: ConnectionConfig;
  readonly slotName: string;
  /** The receiver's latest durable position. */
  flushed(): Lsn;
  /** Waits until everything the server has written so far is durable in the repository. */
  waitForArchive(timeoutMs?: number): Promise<void>;
  /** Stops the receiver (graceful) and waits for it. */
  stop(): Promise<void>;
}

/**
 * Starts a WAL receiver streaming `cluster` into a repository (a directory under the cluster's
 * work dir unless a store is given), as `warden wal stream` would.
 */
export function streamInto<S extends ObjectStore = FsObjectStore>(
  cluster: TestCluster,
  options: { store?: S; slotName?: string } = {},
): StreamingRepository<S> {
  const store = (options.store ?? new FsObjectStore(path.join(cluster.workDir, 'repo'))) as S;
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  const slotName = options.slotName ?? 'warden';
  const abort = new AbortController();
  let flushed = 0n;
  const receiver = new WalReceiver({
    connection,
    store,
    slotName,
    signal: abort.signal,
    onFlush: (lsn) => (flushed = lsn),
  });
  const running = receiver.run();
  running.catch(() => undefined);
  return {
    store,
    connection,
    slotName,
    flushed: () => flushed,
    async waitForArchive(timeoutMs = 30_000) {
      const [row] = await cluster.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      const target = parseLsn(row!.lsn);
      const deadline = Date.now() + timeoutMs;
      while (flushed < target && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50));
      if (flushed < target) throw new Error(`WAL receiver did not reach ${row!.lsn} in ${timeoutMs} ms`);
    },
    async stop() {
      abort.abort();
      await running;
    },
  };
}
