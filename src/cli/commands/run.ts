import path from 'node:path';
import pg from 'pg';
import { takeBackup } from '../../backup/base-backup.ts';
import { WalReceiver } from '../../backup/wal-receiver.ts';
import { startEmbeddedCluster } from '../../embedded/embedded-cluster.ts';
import { EMBEDDED_DIR } from '../../embedded/embedded-state.ts';
import { createLedger, randomTransfer } from '../../embedded/ledger.ts';
import { FsObjectStore } from '../../repository/fs/fs-object-store.ts';
import { listBackups } from '../../repository/backup-catalog.ts';
import { Repository } from '../../repository/repository.ts';
import { readWalInventory } from '../../repository/wal-archive.ts';
import { restorableWindow } from '../../restore/restorable-window.ts';
import { sleep } from '../../util/backoff.ts';
import type { CommandContext } from '../context.ts';
import { describeWindow } from './backup-list.ts';

const WORKLOAD_INTERVAL_MS = 250;
const WINDOW_REPORT_MS = 15_000;

/**
 * The main job on the embedded default: start a local PostgreSQL, seed a ledger with a light
 * write workload, stream its WAL, take a base backup, and keep reporting the restorable window
 * until Ctrl-C, which stops everything cleanly.
 */
export async function runEmbeddedCommand(context: CommandContext, signal: AbortSignal): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out('warden: starting the embedded PostgreSQL (data in ./.warden/pgdata)');
  const cluster = await startEmbeddedCluster();
  const store =
    context.config.sources.repository === 'default'
      ? new FsObjectStore(path.join(EMBEDDED_DIR, 'repo'))
      : context.store;
  const workload = new pg.Client({ ...cluster.connection, ssl: false });
  let receiverRun: Promise<void> | undefined;
  // Stops the receiver and the workload on Ctrl-C and on any failure of the main job.
  const stopAll = new AbortController();
  signal.addEventListener('abort', () => stopAll.abort(), { once: true });
  let workloadRun: Promise<void> | undefined;
  try {
    out(
      `  PostgreSQL ${cluster.instance.binaries.major} on 127.0.0.1:${cluster.connection.port} (user warden, password in .warden/credentials.json)`,
    );
    await workload.connect();
    await createLedger(workload);
    out('  ledger schema ready (ledger_accounts, ledger_transfers); writing a transfer every 250 ms');
    const receiver = new WalReceiver({
      connection: cluster.connection,
      store,
      slotName: context.config.slot,
      logger: context.logger,
      signal: stopAll.signal,
    });
    receiverRun = receiver.run();
    receiverRun.catch(() => undefined);
    out(`  streaming WAL into ${store.location}`);
    workloadRun = (async () => {
      while (!stopAll.signal.aborted) {
        await randomTransfer(workload);
        await sleep(WORKLOAD_INTERVAL_MS, stopAll.signal).catch(() => undefined);
      }
    })();
    const backup = await takeBackup({
      connection: cluster.connection,
      store,
      slotName: context.config.slot,
      compression: context.config.repository.compression,
      logger: context.logger,
      signal,
    });
    out(
      `  base backup ${backup.backup.id} committed (LSN ${backup.backup.startLsn} .. ${backup.backup.endLsn})`,
    );
    out('');
    out('try, in another terminal:');
    out('  npx warden backup list');
    out(
      `  npx warden restore --to-time "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --target-dir /tmp/warden-restored --start`,
    );
    out('Ctrl-C stops everything.');
    while (!signal.aborted) {
      await sleep(2_000, signal).catch(() => undefined);
      if (signal.aborted) break;
      const repository = await Repository.open(store);
      const window = restorableWindow(
        await listBackups(repository),
        await readWalInventory(repository),
        repository.meta.walSegmentSize,
      );
      out(describeWindow(window));
      await sleep(WINDOW_REPORT_MS - 2_000, signal).catch(() => undefined);
    }
    return 0;
  } finally {
    out('warden: stopping');
    stopAll.abort();
    await workloadRun?.catch(() => undefined);
    await receiverRun?.catch(() => undefined);
    await workload.end().catch(() => undefined);
    await cluster.stop();
    out('warden: stopped cleanly');
  }
}
